# NC metrics of every snapshot of a run: features HDF5 -> metrics TSV (same stem).


rule nc_metrics:
    input:
        "results/{experiment}/features/{run}.h5",
    output:
        "results/{experiment}/metrics/{run}.tsv",
    log:
        "results/logs/nc_metrics/{experiment}/{run}.log",
    conda:
        ANALYSIS_ENV
    threads: 1
    resources:
        # Streams chunk by chunk: peak memory stays near 200 MB whatever the file size.
        mem_mb=1000,
        runtime=lambda wildcards, input: 10 + int(input.size_mb / 100),
    shell:
        "python -m ncplasticity.nc {input:q} -o {output:q} > {log:q} 2>&1"

# Data: one prepared .npz per dataset (train/test images, labels, normalisation constants),
# read by every training rule.


# Cheap, and on a cluster the head node is the one that can reach the network for downloads.
localrules:
    prepare_data,


rule prepare_data:
    output:
        dataset_file("{dataset}"),
    log:
        "results/logs/prepare_data/{dataset}.log",
    conda:
        TRAIN_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        data_root=config["data_root"],
        download=config["download"],
    script:
        "../scripts/prepare_data.py"

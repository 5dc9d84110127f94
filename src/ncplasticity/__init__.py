"""Loss of plasticity through neural collapse: data, training, HDF5 feature store and NC metrics."""

__version__ = "0.1.0"

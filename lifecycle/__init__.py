"A notebook-centric, reproducible MLOps workspace."
__version__ = "0.1.0"

"""Memory of models: parameter counts, training memory per GPU, inference memory and fits."""

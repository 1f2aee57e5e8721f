"""The pieces of ``fold_dynamic_relu``: the site it matches, the hyper-function fold, the static PReLU."""

"""Hyperparameter intelligence: advise, estimate, find-batch, lr-find, sweep and Optuna search.

Feature modules are imported directly (tunelab.tune.sweep, tunelab.tune.study, ...), so that
importing one never pulls in the others (or torch) by accident.
"""

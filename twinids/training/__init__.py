"""Training and evaluation jobs: `train(cfg)` and `evaluate(source)` wire data, detector, trainer and tracker.

Glossary: a *job* is one train or eval invocation; its *run* is the MLflow run that tracks it; a *detector*
is the trainable model behind one interface (fit, load, test); a *model card* is what a checkpoint stores
besides weights.
"""

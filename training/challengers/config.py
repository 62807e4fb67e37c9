"""The challengers' settings, apart from the code that runs them so that the command line can
build its options from them without loading torch or scikit-learn (``deepcredit --help``)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MODELS", "BiLstmConfig", "Paper004Config"]


@dataclass(frozen=True)
class BiLstmConfig:
    """How paper 004's BiLSTM is trained (``training.challengers.bilstm``: the choices the
    paper leaves open)."""

    hidden: int = field(default=32, metadata={"help": "LSTM units per direction, both layers"})
    epochs: int = field(default=30, metadata={"help": "most passes over the training clients"})
    batch: int = field(default=512, metadata={"help": "clients per gradient step"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate"})
    patience: int = field(default=3, metadata={
        "help": "epochs without a lower validation loss before stopping"})  # fmt: skip
    validation_share: float = field(default=0.1, metadata={
        "help": "share of the training clients held out for early stopping"})  # fmt: skip
    threads: int = field(default=1, metadata={"help": "torch threads (the machine is shared)"})
    seed: int = field(default=0, metadata={"help": "seed of the weights and the batches"})


#: Paper 004's models, its proposed one first: name → the paper's label.
MODELS = {"bilstm": "Bidirectional LSTM", "gb": "Gradient boosting (GB)",
          "bnn": "Bagging NN (BNN, 10 MLPs)", "rf": "Random forest (RF)",
          "svm": "Support vector machine (SVM)", "logr": "Logistic regression (LOGR)"}  # fmt: skip


@dataclass(frozen=True)
class Paper004Config:
    """Paper 004's experiment on UCI (``training.challengers.paper004``: the choices the paper
    leaves open)."""

    folds: int = field(default=5, metadata={"help": "folds of the cross-validation"})
    seed: int = field(default=0, metadata={"help": "seed of the folds and of every model"})
    bootstrap: int = field(default=200, metadata={
        "help": "bootstrap resamples of the clients for the intervals"})  # fmt: skip
    level: float = field(default=0.95, metadata={"help": "interval level"})
    bilstm: BiLstmConfig = field(default_factory=BiLstmConfig)

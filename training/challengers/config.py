"""The challengers' settings, apart from the code that runs them so that the command line can
build its options from them without loading torch or scikit-learn (``deepcredit --help``)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BASELINES",
    "MEMBERS_001",
    "MODELS",
    "MODELS_001",
    "MODELS_002",
    "MODELS_003",
    "PROTOCOLS_001",
    "ActganConfig",
    "BiLstmConfig",
    "CnnLstmConfig",
    "EventFormConfig",
    "HuihenConfig",
    "Paper001Config",
    "Paper002Config",
    "Paper003Config",
    "Paper004Config",
    "ResNetLstmConfig",
]


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
    max_minutes: float | None = field(default=None, metadata={
        "help": "training time budget, minutes, checked after each epoch (default: "
                "none)"})  # fmt: skip
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


@dataclass(frozen=True)
class CnnLstmConfig:
    """How paper 001's CNN-LSTM is built and trained (``training.challengers.cnnlstm``). The
    defaults are the paper's where it gives them (its Table 3's optimal values, "Loss Function
    and Optimization", "Model Training"); the rest are the choices its text leaves open."""

    filters: tuple[int, ...] = field(default=(64, 128, 256), metadata={
        "help": "filters of each CNN branch's three residual convolutions (paper: 64, 128, "
                "256)"})  # fmt: skip
    lstm_units: int = field(default=128, metadata={"help": "LSTM units (paper: 128)"})
    dropout: float = field(default=0.5, metadata={
        "help": "dropout of the fully connected layers (paper: 0.5)"})  # fmt: skip
    loss_alpha: float = field(default=0.7, metadata={
        "help": "the loss: alpha * BCE + (1 - alpha) * focal (paper: 0.7)"})  # fmt: skip
    focal_gamma: float = field(default=2.0, metadata={
        "help": "the focal loss's focusing exponent (the paper gives none; 2 is Lin et "
                "al.'s)"})  # fmt: skip
    lr: float = field(default=1e-3, metadata={"help": "Adam's initial learning rate (paper)"})
    batch: int = field(default=256, metadata={"help": "clients per gradient step (paper)"})
    epochs: int = field(default=100, metadata={"help": "most passes over the training clients "
                                                       "(paper: 100)"})  # fmt: skip
    patience: int = field(default=10, metadata={
        "help": "epochs without a lower validation loss before stopping (paper: 10)"})  # fmt: skip
    plateau: int = field(default=5, metadata={
        "help": "epochs of a flat validation loss before the learning rate is cut tenfold "
                "(paper: 5)"})  # fmt: skip
    max_minutes: float | None = field(default=None, metadata={
        "help": "training time budget, minutes, checked after each epoch (default: "
                "none)"})  # fmt: skip
    threads: int = field(default=1, metadata={"help": "torch threads (the machine is shared)"})
    seed: int = field(default=0, metadata={"help": "seed of the weights and the batches"})


#: Paper 001's models: its ensemble and the ensemble's four members, then paper 004's gradient
#: boosting (the strongest of 004's rows that refits in seconds) on the same clients, so the
#: two papers' rows can be compared pairwise. Name → label.
MODELS_001 = {"ensemble": "Weighted ensemble (CNN-LSTM, LightGBM, XGBoost, RF)",
              "cnnlstm": "CNN-LSTM (focal + BCE loss)", "lightgbm": "LightGBM",
              "xgboost": "XGBoost", "rf": "Random forest (RF)",
              "gb004": "Paper 004's gradient boosting (GB)"}  # fmt: skip
#: The ensemble's members, in the order of their weights.
MEMBERS_001 = ("cnnlstm", "lightgbm", "xgboost", "rf")
#: The two protocols: paper 001's own train / validation / test split, and paper 004's folds.
PROTOCOLS_001 = ("holdout", "folds")


@dataclass(frozen=True)
class Paper001Config:
    """Paper 001's experiment on UCI (``training.challengers.paper001``: the choices its text
    leaves open)."""

    protocols: tuple[str, ...] = field(default=PROTOCOLS_001, metadata={
        "help": "holdout: the paper's 70/15/15 split of the clients; folds: paper 004's "
                "five folds (each training fold split 70:15 into training and "
                "validation)"})  # fmt: skip
    folds: int = field(default=5, metadata={"help": "folds of the cross-validation"})
    seed: int = field(default=0, metadata={"help": "seed of the splits and of every model"})
    trials: int = field(default=100, metadata={
        "help": "Optuna (TPE) trials choosing the ensemble's weights on the validation "
                "clients"})  # fmt: skip
    trees: int = field(default=300, metadata={"help": "trees of the random forest"})
    forest_rows: int | None = field(default=None, metadata={
        "help": "rows each tree of the random forest draws (default: as many as it is "
                "trained on)"})  # fmt: skip
    bootstrap: int = field(default=200, metadata={
        "help": "bootstrap resamples of the clients for the intervals"})  # fmt: skip
    level: float = field(default=0.95, metadata={"help": "interval level"})
    cnnlstm: CnnLstmConfig = field(default_factory=CnnLstmConfig)


@dataclass(frozen=True)
class ActganConfig:
    """Paper 003's ACTGAN (``training.challengers.actgan``): the paper's values where its text
    gives them (three cross layers, Adam), CTGAN's defaults for the sizes it does not give, and
    the epochs bounded so that the whole run fits the shared machine."""

    epochs: int = field(default=60, metadata={
        "help": "passes of batches over the training clients (paper: 10,000 iterations; "
                "bounded here for one CPU core)"})  # fmt: skip
    batch: int = field(default=500, metadata={"help": "rows per step (CTGAN's)"})
    embedding: int = field(default=128, metadata={"help": "noise dimensions (CTGAN's)"})
    generator: tuple[int, ...] = field(default=(256, 256), metadata={
        "help": "the generator's residual layers (CTGAN's)"})  # fmt: skip
    discriminator: tuple[int, ...] = field(default=(256, 256), metadata={
        "help": "the discriminator's hidden layers (CTGAN's)"})  # fmt: skip
    cross_layers: int = field(default=3, metadata={"help": "cross layers (paper: 3)"})
    lr: float = field(default=2e-4, metadata={"help": "Adam learning rate (CTGAN's)"})
    gp: float = field(default=10.0, metadata={"help": "gradient penalty weight (WGAN-GP's)"})
    aux_weight: float = field(default=1.0, metadata={
        "help": "weight of the auxiliary classifier's cross-entropy in both losses"})  # fmt: skip
    critic_steps: int = field(default=1, metadata={
        "help": "discriminator steps per generator step (CTGAN's)"})  # fmt: skip
    mixture_rows: int = field(default=4000, metadata={
        "help": "rows each amount's Gaussian mixture (CTGAN's mode-specific normalisation) is "
                "fitted on"})  # fmt: skip
    ratio: float = field(default=0.4, metadata={
        "help": "defaults : non-defaults of the training clients after oversampling "
                "(paper: 0.4)"})  # fmt: skip
    seed: int = field(default=0, metadata={"help": "seed of the weights, noise and batches"})


@dataclass(frozen=True)
class ResNetLstmConfig:
    """Paper 003's ResNet-LSTM (``training.challengers.resnetlstm``): the paper's Table 2 as
    its text gives it (convolutions of 16, 32, 64 and 128 filters, dropout 0.5, ReLU, Adam at
    1e-4) and the choices it leaves open."""

    filters: tuple[int, ...] = field(default=(16, 32, 64, 128), metadata={
        "help": "filters of the ResNet's residual blocks (paper: 16, 32, 64, 128)"})  # fmt: skip
    lstm_units: int = field(default=64, metadata={"help": "BiLSTM units per direction"})
    fused: int = field(default=64, metadata={
        "help": "width of the fully connected fusion layer (XGBoost's inputs)"})  # fmt: skip
    dropout: float = field(default=0.5, metadata={"help": "dropout (paper: 0.5)"})
    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate (paper: 1e-4)"})
    batch: int = field(default=256, metadata={"help": "clients per gradient step"})
    epochs: int = field(default=40, metadata={"help": "most passes over the training clients"})
    patience: int = field(default=5, metadata={
        "help": "epochs without a lower validation loss before stopping"})  # fmt: skip
    max_minutes: float | None = field(default=None, metadata={
        "help": "training time budget, minutes, checked after each epoch (default: "
                "none)"})  # fmt: skip
    threads: int = field(default=1, metadata={"help": "torch threads (the machine is shared)"})
    seed: int = field(default=0, metadata={"help": "seed of the weights and the batches"})


@dataclass(frozen=True)
class HuihenConfig:
    """How paper 002's HUIHEN is built and trained (``training.challengers.huihen``). The
    defaults are the paper's where it gives them (its sections 3.4 and 5.2); the rest are the
    choices its text leaves open."""

    session_gap_s: float = field(default=3600.0, metadata={
        "help": "seconds between two behaviours that start a new session (paper: one "
                "hour)"})  # fmt: skip
    sessions: int = field(default=50, metadata={
        "help": "the most recent sessions read before a post (paper: 50)"})  # fmt: skip
    behaviours: int = field(default=25, metadata={
        "help": "the last behaviours read of each session (paper: 25)"})  # fmt: skip
    min_behaviours: int = field(default=3, metadata={
        "help": "sessions with fewer behaviours are dropped as noise (paper: 3)"})  # fmt: skip
    embedding: int = field(default=10, metadata={
        "help": "behaviour embedding and field-wise feature width (paper: 10)"})  # fmt: skip
    hidden: int = field(default=30, metadata={"help": "both GRUs' state width (paper: 30)"})
    fc: tuple[int, int] = (50, 25)  # UPI's hidden layers (paper: 50, 25, then the output)
    dropout: float = field(default=0.6, metadata={"help": "UPI dropout (paper: 0.6)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (paper: 0.001)"})
    batch: int = field(default=256, metadata={"help": "posts per gradient step"})
    epochs: int = field(default=30, metadata={"help": "most passes over the training posts"})
    patience: int = field(default=3, metadata={
        "help": "epochs without a lower validation loss before stopping"})  # fmt: skip
    max_minutes: float | None = field(default=None, metadata={
        "help": "training time budget, minutes, pre-training included (default: "
                "none)"})  # fmt: skip
    pretrain_epochs: int = field(default=10, metadata={
        "help": "epochs of the transfer auxiliary network (paper 4.2: the UPI layer on "
                "profiles alone, guided by gradient boosting's probabilities); 0: none, the "
                "paper's HUIHEN-withoutAuxNet"})  # fmt: skip
    threads: int = field(default=1, metadata={"help": "torch threads (the machine is shared)"})
    seed: int = field(default=0, metadata={"help": "seed of the weights and the batches"})


#: Paper 003's models on UCI: its system first, the ablation without ACTGAN, the network's own
#: output, and plain gradient boosting on the raw columns with and without ACTGAN's rows. Name →
#: label.
MODELS_003 = {"system": "ACTGAN + ResNet-LSTM + focal XGBoost (paper 003)",
              "no_actgan": "ResNet-LSTM + focal XGBoost, no oversampling",
              "resnetlstm": "ResNet-LSTM's own sigmoid output (ACTGAN rows)",
              "xgboost": "XGBoost on the raw columns, no oversampling",
              "xgboost_actgan": "XGBoost on the raw columns + ACTGAN rows"}  # fmt: skip


@dataclass(frozen=True)
class Paper003Config:
    """Paper 003's experiment on UCI (``training.challengers.paper003``)."""

    test_share: float = field(default=0.3, metadata={"help": "share of clients tested (paper)"})
    validation_share: float = field(default=0.2, metadata={
        "help": "share of the training clients held out for validation (paper)"})  # fmt: skip
    focal_alpha: tuple[float, ...] = field(default=(0.6, 0.75, 0.9), metadata={
        "help": "focal loss weights of a default searched on validation"})  # fmt: skip
    focal_gamma: tuple[float, ...] = field(default=(1.0, 2.0), metadata={
        "help": "focal loss focusing exponents searched on validation"})  # fmt: skip
    seed: int = field(default=0, metadata={"help": "seed of the split and of every model"})
    bootstrap: int = field(default=200, metadata={
        "help": "bootstrap resamples of the test clients for the intervals"})  # fmt: skip
    draws: int = field(default=1000, metadata={
        "help": "bootstrap draws for the intervals of differences"})  # fmt: skip
    level: float = field(default=0.95, metadata={"help": "interval level"})
    actgan: ActganConfig = field(default_factory=ActganConfig)
    network: ResNetLstmConfig = field(default_factory=ResNetLstmConfig)


#: The Table 1 baselines every challenger is judged against on the benchmark's test posts
#: (``training.baselines``). Name → label.
BASELINES = {"gbdt": "Gradient-boosted trees (Table 1's XGB row)",
             "lr": "Logistic regression (Table 1)"}  # fmt: skip
#: Paper 002's rows on the benchmark: its HUIHEN, its pre-trained auxiliary network alone, then
#: the Table 1 baselines. Name → label.
MODELS_002 = {"huihen": "HUIHEN (time-aware GRU in sessions, user-item-aware GRU across)",
              "huihen-aux": "HUIHEN's transfer auxiliary network alone: its UPI layer "
                            "pre-trained on the profile, T and H zero (paper 4.2, Fig. 3)",
              **BASELINES}  # fmt: skip


@dataclass(frozen=True)
class EventFormConfig:
    """How papers 001, 003 and 004's systems read the benchmark's posts
    (``training.challengers.eventform``, ``training.challengers.events``)."""

    steps: int = field(default=16, metadata={
        "help": "loan-level steps of each post's temporal part, the post last"})  # fmt: skip
    flat_steps: int = field(default=8, metadata={
        "help": "the last of those steps the trees see, flattened"})  # fmt: skip
    train_posts: int | None = field(default=100_000, metadata={
        "help": "training posts (sampled) the networks and paper 003's ACTGAN train on; the "
                "trees of 001 see all"})  # fmt: skip


@dataclass(frozen=True)
class Paper002Config:
    """Paper 002's experiment on the benchmark (``training.challengers.paper002``)."""

    bootstrap: int = field(default=1000, metadata={
        "help": "bootstrap draws over test users for the intervals of differences"})  # fmt: skip
    level: float = field(default=0.95, metadata={"help": "interval level"})
    huihen: HuihenConfig = field(default_factory=HuihenConfig)

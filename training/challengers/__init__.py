"""The seed papers' other systems, built as their papers describe, as challengers to DeepCredit
on real data: paper 004's bidirectional LSTM behavioural score and its benchmark classifiers on
the UCI credit-card table (``uci``, ``bilstm``, ``paper004``), paper 001's CNN-LSTM in a
weighted ensemble with LightGBM, XGBoost and a random forest (``cnnlstm``, ``paper001``), and
the results file every paper's rows share (``results``). A room beside the baselines: it
imports only ``training.core``.
"""

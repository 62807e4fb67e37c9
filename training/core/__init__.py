"""The DeepCredit model in torch: TLSTM, hierarchical model, datasets in the streaming form,
training, evaluation, and the model artifact (weights, card, numpy export)."""

__all__: list[str] = []

"""The risk team's evaluation (``deepcredit report``): prediction files of any models in, one
report out (``report``: every figure as JSON, its settings in ``config``; ``page``: the HTML
page with its plots); and the prediction files of our own models (``predict``: a DeepCredit
artifact, a baseline on its split). The math is in ``training.core`` (evaluation, delong,
hmeasure, bands, stability, mcnemar); the format in ``training.core.predictions``.
"""

__all__: list[str] = []

"""Paper 003's ACTGAN: a conditional tabular GAN (CTGAN, Xu et al. 2019, the ``ctgan`` package)
with a Wasserstein critic and gradient penalty, an auxiliary classifier on the discriminator
and cross layers before it, trained on the training clients to oversample the defaults.

Liu et al., ``../shared/papers/003``, 3.1 and Algorithm 1: the generator takes noise and a
conditional vector (CTGAN's); "a crosslayer is used to calculate the correlation between
features before discriminator", three cross layers, "the embedding is obtained by concatenating
hidden layers and crosslayers"; the discriminator outputs the critic's value and the class, the
auxiliary classifier's cross-entropy added to the discriminator's loss and the generator's;
Wasserstein loss with a gradient penalty (its formulas 2-4); Adam. 4.3.1: "generates sufficient
samples to increase the imbalance ratio to 0.4".

Built on ``ctgan.CTGAN``: its data transformer (mode-specific normalisation of the amounts,
one-hot categories), its training-by-sampling conditional vectors and conditional loss, its
generator and ``sample`` are used as they are; the discriminator and the training step are
replaced (``AcDiscriminator``, ``Actgan.fit``). What the text leaves open, chosen here:

- the class is one more categorical column of the table (``default``), so CTGAN's conditional
  vector can ask for it and its conditional loss makes the generator honour it; the auxiliary
  classifier sees the row with the class (in the row and in the conditional vector) masked out,
  so it must tell a default from the other columns; the critic sees the embedding and the class
  beside it (a class-aware Wasserstein critic, as in CTGAN);
- the auxiliary target of a generated row is the class the generator wrote in it (its argmax);
- cross layers as in the Deep & Cross Network (Wang et al. 2017): x_{l+1} = x0 (w_l . x_l) +
  b_l + x_l; no packing of rows (CTGAN's ``pac``; the paper has none): ``pac`` = 1;
- a synthetic row is kept when its generated class is a default (rejection), until the
  training part's defaults : non-defaults reach the ratio asked; each amount and the age
  clipped to the training rows' range.

>>> frame = to_frame(read_uci("tests/data/uci-first-300.csv"))
>>> frame.shape, DISCRETE[:2]
((300, 24), ('female', 'education'))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from ctgan import CTGAN
from ctgan.data_sampler import DataSampler
from ctgan.data_transformer import DataTransformer
from ctgan.synthesizers.ctgan import Generator
from torch import nn
from torch.nn import functional as F

from training.challengers.config import ActganConfig
from training.challengers.uci import UciTable, read_uci  # noqa: F401  (read_uci: the doctest)

__all__ = [
    "DISCRETE",
    "LABEL",
    "AcDiscriminator",
    "Actgan",
    "CrossLayers",
    "SubsampledTransformer",
    "concat",
    "from_frame",
    "oversample",
    "to_frame",
    "to_generate",
]

#: The class column of the GAN's table.
LABEL = "default"
#: The GAN table's categorical columns (the rest are amounts or years).
DISCRETE = ("female", "education", "married", *(f"status_{m}" for m in range(1, 7)), LABEL)
_MONTHS = range(1, 7)  # oldest first, as ``UciTable.temporal``


def to_frame(table: UciTable) -> pd.DataFrame:
    """The clients as the GAN's table (N, 24): credit limit, female, education (1 graduate
    school, 2 university, 3 high school, 4 other), married, age, status_1..6, bill_1..6,
    paid_1..6 (months oldest first), ``default`` (0/1)."""
    s, t = table.static, table.temporal
    education = 1 + np.argmax(s[:, 2:6], axis=1)
    cols: dict[str, np.ndarray] = {
        "credit_limit": s[:, 0], "female": s[:, 1].astype(int), "education": education,
        "married": s[:, 6].astype(int), "age": s[:, 7]}  # fmt: skip
    for k, name in enumerate(("status", "bill", "paid")):
        for m in _MONTHS:
            v = t[:, m - 1, k]
            cols[f"{name}_{m}"] = v.astype(int) if name == "status" else v
    cols[LABEL] = table.y.astype(int)
    return pd.DataFrame(cols)


def from_frame(frame: pd.DataFrame, prefix: str = "synthetic") -> UciTable:
    """The GAN's table back as clients (``to_frame``'s inverse), ids ``<prefix>-k``; amounts
    and ages as generated (not rounded)."""
    f = {c: frame[c].to_numpy() for c in frame.columns}
    education = f["education"].astype(int)
    static = np.stack([f["credit_limit"], f["female"], education == 1, education == 2,
                       education == 3, education == 4, f["married"], f["age"]],
                      axis=1).astype(np.float64)  # fmt: skip
    temporal = np.stack(
        [np.stack([f[f"{name}_{m}"] for m in _MONTHS], axis=1)
         for name in ("status", "bill", "paid")], axis=2).astype(np.float64)  # fmt: skip
    ids = np.array([f"{prefix}-{k}" for k in range(len(frame))])
    return UciTable(ids, temporal, static, f[LABEL].astype(np.int64))


def concat(a: UciTable, b: UciTable) -> UciTable:
    """The clients of ``a`` then those of ``b``."""
    return UciTable(np.r_[a.ids, b.ids], np.concatenate([a.temporal, b.temporal]),
                    np.concatenate([a.static, b.static]), np.r_[a.y, b.y])  # fmt: skip


def to_generate(y: np.ndarray, ratio: float) -> int:
    """Synthetic defaults to add to clients with labels ``y`` (N,) 0/1 so that defaults :
    non-defaults reaches ``ratio`` (0 when it is reached already).

    >>> to_generate(np.array([1] * 2 + [0] * 10), 0.4)
    2
    """
    positives, negatives = int(np.sum(y == 1)), int(np.sum(y == 0))
    return max(0, int(np.ceil(ratio * negatives - positives - 1e-9)))


class SubsampledTransformer(DataTransformer):
    """CTGAN's data transformer with each amount's Gaussian mixture fitted on at most
    ``fit_rows`` rows drawn at random (seeded), not all of them: the variational mixture's fit
    dominates the run on one core (minutes for 17,000 rows); a few thousand rows place its
    modes as well. Every row is still transformed, in this process."""

    def __init__(self, fit_rows: int, seed: int) -> None:
        super().__init__()
        self.fit_rows, self.seed = fit_rows, seed

    def _parallel_transform(self, raw_data: pd.DataFrame, column_transform_info_list: list):
        # CTGAN's joblib pool pickles each column's transformer to a worker process: on a
        # shared two-core machine, and for hundreds of columns, slower than one core.
        return self._synchronous_transform(raw_data, column_transform_info_list)

    def _fit_continuous(self, data: pd.DataFrame):
        if len(data) > self.fit_rows:
            data = data.sample(self.fit_rows, random_state=self.seed)
        return super()._fit_continuous(data)

    def _transform_continuous(self, column_transform_info, data: pd.DataFrame) -> np.ndarray:
        """CTGAN's mode-specific normalisation of one column (N, 1) → (N, 1 + modes): the value
        scaled by a mode drawn with the mixture's posterior probability of each mode, and that
        mode one-hot; ``rdt``'s ``ClusterBasedNormalizer`` draws the modes one row at a time
        (minutes for 50,000 rows and a few hundred columns), here at once, by the inverse of
        each row's cumulative probabilities (the same distribution, numpy's global random
        state). A column with missing values goes through ``rdt`` as it is."""
        x = data.iloc[:, 0].to_numpy(dtype=np.float64)
        gm = column_transform_info.transform
        if np.isnan(x).any():
            return super()._transform_continuous(column_transform_info, data)
        bgm, valid = gm._bgm_transformer, gm.valid_component_indicator
        means = bgm.means_.reshape(-1)[valid]
        stds = np.sqrt(bgm.covariances_).reshape(-1)[valid]
        normalized = (x[:, None] - means) / (gm.STD_MULTIPLIER * stds)
        probs = bgm.predict_proba(x[:, None])[:, valid] + 1e-6
        probs /= probs.sum(axis=1, keepdims=True)
        u = np.random.random_sample(len(x))[:, None]
        mode = np.minimum((np.cumsum(probs, axis=1) < u).sum(axis=1), probs.shape[1] - 1)
        rows = np.arange(len(x))
        out = np.zeros((len(x), column_transform_info.output_dimensions))
        out[:, 0] = np.clip(normalized[rows, mode], -0.99, 0.99)
        out[rows, mode + 1] = 1.0
        return out


class CrossLayers(nn.Module):
    """``layers`` cross layers of the Deep & Cross Network: x_{l+1} = x0 (w_l . x_l) + b_l +
    x_l, on rows (B, dim) → (B, dim): feature crosses of degree up to ``layers`` + 1."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(layers, dim) / dim**0.5)
        self.b = nn.Parameter(torch.zeros(layers, dim))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for w, b in zip(self.w, self.b, strict=True):
            x = x0 * (x @ w).unsqueeze(1) + b + x
        return x


class AcDiscriminator(nn.Module):
    """ACTGAN's discriminator on rows (B, data + conditional vector): cross layers and a
    hidden stack (CTGAN's: Linear, LeakyReLU 0.2, dropout 0.5) side by side on the row with
    the class masked out (``mask``: 1 keep, 0 the class's one-hot in the row and in the
    conditional vector), their outputs concatenated into the embedding; the critic (a linear
    head on the embedding and the class one-hots) and the auxiliary classifier's logit of a
    default (a linear head on the embedding). Returns (critic (B,), logit (B,))."""

    def __init__(self, input_dim: int, hidden: tuple[int, ...], cross_layers: int,
                 mask: torch.Tensor) -> None:  # fmt: skip
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.cross = CrossLayers(input_dim, cross_layers)
        seq: list[nn.Module] = []
        dim = input_dim
        for h in hidden:
            seq += [nn.Linear(dim, h), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
            dim = h
        self.hidden = nn.Sequential(*seq)
        label_dim = int((mask == 0).sum())
        self.critic = nn.Linear(dim + input_dim + label_dim, 1)
        self.aux = nn.Linear(dim + input_dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        masked = x * self.mask
        embedding = torch.cat([self.hidden(masked), self.cross(masked)], dim=1)
        label = x[:, self.mask == 0]
        critic = self.critic(torch.cat([embedding, label], dim=1)).squeeze(1)
        return critic, self.aux(embedding).squeeze(1)

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, weight: float
                         ) -> torch.Tensor:  # fmt: skip
        """WGAN-GP's penalty (Gulrajani et al. 2017; paper 003 formula 4): ``weight`` times the
        mean of (‖∇ critic‖₂ − 1)² at random points between real and fake rows."""
        alpha = torch.rand(real.size(0), 1)
        points = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        critic, _ = self(points)
        (grad,) = torch.autograd.grad(critic.sum(), points, create_graph=True)
        return weight * ((grad.norm(2, dim=1) - 1) ** 2).mean()


class Actgan(CTGAN):
    """CTGAN with ACTGAN's discriminator and training step (module docstring). ``fit`` takes
    the GAN's table (``to_frame``); ``sample`` is CTGAN's. ``history``: per epoch the
    generator's and discriminator's losses, the critic's Wasserstein estimate (mean critic on
    real rows minus on fake ones) and the auxiliary classifier's loss on real rows."""

    def __init__(self, cfg: ActganConfig, discrete: tuple[str, ...] = DISCRETE) -> None:
        super().__init__(embedding_dim=cfg.embedding, generator_dim=cfg.generator,
                         discriminator_dim=cfg.discriminator, generator_lr=cfg.lr,
                         discriminator_lr=cfg.lr, batch_size=cfg.batch, epochs=cfg.epochs,
                         pac=1, enable_gpu=False)  # fmt: skip
        self.cfg, self.discrete = cfg, tuple(discrete)
        self.history: list[dict[str, float]] = []
        self.bounds: dict[str, tuple[float, float]] = {}

    def _label_spans(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Where the class's one-hot lies in a transformed row and in the conditional vector."""
        st = st_c = 0
        for info in self._transformer._column_transform_info_list:
            if info.column_name == LABEL:
                return (st, st + info.output_dimensions), (st_c, st_c + info.output_dimensions)
            st += info.output_dimensions
            if info.column_type == "discrete":
                st_c += info.output_dimensions
        raise ValueError(f"no column {LABEL!r}")

    def fit(self, frame: pd.DataFrame, progress: Callable[[str], None] = lambda _: None
            ) -> Actgan:  # fmt: skip
        """Train on ``frame`` (``to_frame``'s columns, or any table with the class column
        ``LABEL`` and the categorical columns given at construction) for ``cfg.epochs`` passes
        of batches; seeded by ``cfg.seed``. Raises ValueError when the class column is
        missing."""
        if LABEL not in frame.columns or LABEL not in self.discrete:
            raise ValueError(f"no categorical column {LABEL!r}")
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)  # CTGAN's sampler draws from numpy's global state
        continuous = [c for c in frame.columns if c not in self.discrete]
        self.bounds = {c: (float(frame[c].min()), float(frame[c].max())) for c in continuous}
        self._transformer = SubsampledTransformer(cfg.mixture_rows, cfg.seed)
        self._transformer.fit(frame, [c for c in frame.columns if c in self.discrete])
        data = self._transformer.transform(frame)
        self._data_sampler = DataSampler(data, self._transformer.output_info_list, True)
        data_dim = self._transformer.output_dimensions
        cond_dim = self._data_sampler.dim_cond_vec()
        (ys, ye), (cs, ce) = self._label_spans()
        value_id = int(self._transformer.convert_column_name_value_to_id(LABEL, 1)["value_id"])
        mask = torch.ones(data_dim + cond_dim)
        mask[ys:ye] = 0
        mask[data_dim + cs : data_dim + ce] = 0
        self._generator = Generator(cfg.embedding + cond_dim, cfg.generator, data_dim)
        disc = AcDiscriminator(data_dim + cond_dim, cfg.discriminator, cfg.cross_layers, mask)
        opt_g = torch.optim.Adam(self._generator.parameters(), lr=cfg.lr, betas=(0.5, 0.9),
                                 weight_decay=1e-6)  # fmt: skip
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9),
                                 weight_decay=1e-6)  # fmt: skip
        b = cfg.batch
        steps = max(len(data) // b, 1)

        def generate() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                np.ndarray, np.ndarray]:  # fmt: skip
            # Raw and activated rows, conditional vector, its loss mask, column, category.
            c, m, col, opt = self._data_sampler.sample_condvec(b)
            c, m = torch.from_numpy(c), torch.from_numpy(m)
            raw = self._generator(torch.cat([torch.randn(b, cfg.embedding), c], dim=1))
            return raw, self._apply_activate(raw), c, m, col, opt

        def is_default(rows: torch.Tensor) -> torch.Tensor:
            return (rows[:, ys:ye].argmax(dim=1) == value_id).float()

        self.history = []
        for epoch in range(cfg.epochs):
            for _ in range(steps):
                for _ in range(cfg.critic_steps):
                    _, fake, c, _, col, opt = generate()
                    perm = np.random.permutation(b)
                    real = torch.from_numpy(self._data_sampler.sample_data(
                        data, b, col[perm], opt[perm]).astype("float32"))  # fmt: skip
                    real_in = torch.cat([real, c[perm]], dim=1)
                    fake_in = torch.cat([fake, c], dim=1).detach()
                    critic_real, aux_real = disc(real_in)
                    critic_fake, aux_fake = disc(fake_in)
                    aux_loss = F.binary_cross_entropy_with_logits(aux_real, is_default(real))
                    aux_fake_loss = F.binary_cross_entropy_with_logits(
                        aux_fake, is_default(fake.detach())
                    )
                    wasserstein = critic_real.mean() - critic_fake.mean()
                    loss_d = (-wasserstein + disc.gradient_penalty(real_in, fake_in, cfg.gp)
                              + cfg.aux_weight * (aux_loss + aux_fake_loss))  # fmt: skip
                    opt_d.zero_grad()
                    loss_d.backward()
                    opt_d.step()
                raw, fake, c, m, _, _ = generate()
                critic_fake, aux_fake = disc(torch.cat([fake, c], dim=1))
                loss_g = (-critic_fake.mean() + self._cond_loss(raw, c, m)
                          + cfg.aux_weight * F.binary_cross_entropy_with_logits(
                              aux_fake, is_default(fake.detach())))  # fmt: skip
                opt_g.zero_grad()
                loss_g.backward()
                opt_g.step()
            self.history.append({"epoch": epoch + 1, "generator": round(loss_g.item(), 4),
                                 "discriminator": round(loss_d.item(), 4),
                                 "wasserstein": round(wasserstein.item(), 4),
                                 "aux_real": round(aux_loss.item(), 4)})  # fmt: skip
            if (epoch + 1) % 5 == 0 or epoch + 1 == cfg.epochs:
                progress(f"ACTGAN epoch {epoch + 1}: {self.history[-1]}")
        return self

    def defaults(self, n: int, seed: int, most_tries: int = 50) -> pd.DataFrame:
        """``n`` synthetic rows the generator writes as defaults, asked for by the conditional
        vector (``default`` = 1) and kept only when the class it wrote is 1; amounts and ages
        clipped to the range of the training rows (the mixtures' tails reach past it: a
        negative credit limit). Raises
        RuntimeError when ``most_tries`` rounds of 2n rows give fewer."""
        self.set_random_state(seed)
        kept: list[pd.DataFrame] = []
        have = 0
        self._generator.eval()
        with torch.no_grad():
            for _ in range(most_tries):
                if have >= n:
                    break
                rows = self.sample(max(2 * n, self._batch_size), LABEL, 1)
                rows = rows[rows[LABEL].astype(int) == 1]
                kept.append(rows)
                have += len(rows)
        self._generator.train()
        if have < n:
            raise RuntimeError(f"the generator wrote {have} defaults in {most_tries} rounds, "
                               f"{n} asked")  # fmt: skip
        rows = pd.concat(kept, ignore_index=True).iloc[:n]
        for c, (low, high) in self.bounds.items():
            rows[c] = rows[c].clip(low, high)
        return rows


def oversample(train: UciTable, cfg: ActganConfig,
               progress: Callable[[str], None] = lambda _: None
               ) -> tuple[UciTable, Actgan]:  # fmt: skip
    """The synthetic defaults (their own ``UciTable``, ids ``synthetic-k``) that bring the
    clients of ``train`` to defaults : non-defaults = ``cfg.ratio``, from an ACTGAN trained on
    ``train`` alone; and the GAN (its ``history``). No synthetic row when the ratio is reached
    already (the GAN is still trained: its history is reported)."""
    gan = Actgan(cfg).fit(to_frame(train), progress)
    n = to_generate(train.y, cfg.ratio)
    frame = gan.defaults(n, cfg.seed) if n else to_frame(train).iloc[:0]
    synthetic = from_frame(frame)
    progress(f"ACTGAN: {n} synthetic defaults ({dataclasses.asdict(cfg)})")
    return synthetic, gan

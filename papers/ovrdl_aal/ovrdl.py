"""Stage 1, one-versus-rest disentangle learning (OVRDL).

An encoder E; per attribute k (k = 0 identity, k >= 1 the domain types) a generator G_k = Dense(128, tanh)
giving the feature f_k = G_k(E(x)); discriminators D_kj = Dense(C_j, softmax) predicting attribute j from f_k.
Each batch makes three kinds of update:
  (a) task:          min over E, G, D_kk of  Σ_k w_k · CE(D_kk(f_k), y_k)                   (w_0 = 1, w_k = 0.1)
  (b) discriminator: min over D_kj, j ≠ k, of Σ_{j≠k} w_kj · MSE(D_kj(f_k), onehot(y_j)), E and G frozen
  (c) adversary:     min over E, G of Σ_{j≠k} w_kj · MSE(D_kj(f_k), ỹ_j) + Σ_k w_k · MSE(D_kk(f_k), onehot(y_k)),
                     D frozen, `adversary_steps` (5) times,
with the one-versus-rest target ỹ_j = C_j · π_j ⊙ (1 − onehot(y_j)) (π_j the class prior; unnormalized, as the
official code ends up) and w_kj = w_j · λ[j, k] (w_0 = 1 for the pairs whose target is the identity, w_j = 0.1
otherwise), λ the independence matrix (0 for causally related pairs); all as the official `train_cmnist_phase1.py`
(`build_model`, `make_gan_phase_1_domain_neg`). Which parameters an update trains (`routing`):
- paper: as the official per-layer trainable flags are written: the own-attribute terms of (c) reach E only
  (G_k frozen there), the cross terms E and G_k;
- effective: as Keras 2 collects those flags when the model is compiled (after the loop that sets them): every
  term of (c) trains E and G_0 ... G_{K-2}, and the last generator G_{K-1} is not trained by (c) at all.
The plain classifier baseline is this model over the identity alone: E, G_0, D_00 and the task loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional

from common.config import bounded
from common.errors import ConfigError

ENCODERS = ("cnn", "mlp")
ROUTINGS = ("paper", "effective")


@dataclass
class OVRDLConfig:
    # cnn: 2 x conv32 3x3, max-pool, dropout, flatten (official input_model_simpleCNN) | mlp
    encoder: str = bounded("cnn", choices=ENCODERS)
    filters: int = bounded(32, minimum=1)
    mlp_hidden: int = bounded(256, minimum=1)
    feature_dim: int = bounded(128, minimum=1)  # G_k = Dense(128, tanh)
    dropout: float = bounded(0.25, minimum=0.0, below=1.0)
    domain_task_weight: float = bounded(0.1, minimum=0.0)  # w_k for k >= 1 (w_0 = 1)
    identity_pair_weight: float = bounded(1.0, minimum=0.0)  # w_k0 = 1 · λ[0, k] (official); 0.1: ablation
    domain_pair_weight: float = bounded(0.1, minimum=0.0)  # w_kj = 0.1 · λ[j, k], j >= 1
    adversary_own_term: bool = True  # (c) carries Σ_k w_k MSE(D_kk(f_k), onehot(y_k)) (official); false: ablation
    routing: str = bounded("paper", choices=ROUTINGS)  # the trainable flags as written | as Keras 2 compiles them
    independence: list[list[float]] | None = None  # λ [K, K], entries >= 0; null: 1 − I (every pair independent)
    adversary_steps: int = bounded(5, minimum=1)


def independence_matrix(config: OVRDLConfig, attributes: int) -> np.ndarray:
    """λ [K, K]: the configured matrix, checked to be K x K with entries >= 0, or 1 − I."""
    if config.independence is None:
        return 1.0 - np.eye(attributes)
    rows = config.independence
    if len(rows) != attributes or any(len(row) != attributes for row in rows):
        shape = " x ".join(str(n) for n in (len(rows), *sorted({len(row) for row in rows})))
        raise ConfigError(
            f"Bad config value model.ovrdl.independence={rows!r}: λ must be {attributes} x {attributes}, one row "
            f"and column per attribute of the data (identity, colour[, thickness]); it is {shape}."
        )
    matrix = np.asarray(rows, dtype=np.float64)
    if (matrix < 0).any() or np.isnan(matrix).any():
        raise ConfigError(
            f"Bad config value model.ovrdl.independence={rows!r}: every entry of λ must be a number ≥ 0 "
            "(0 for a causally related pair, 1 for an independent one)."
        )
    return matrix


def one_versus_rest_targets(labels: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """ỹ = C · π ⊙ (1 − onehot(y)) [B, C]: mass on every class but the true one, in proportion to the prior."""
    classes = len(prior)
    return classes * prior[None, :] * (1 - functional.one_hot(labels, classes).to(prior.dtype))


def build_encoder(config: OVRDLConfig, input_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    if config.encoder == "cnn":
        channels, height, width = input_shape
        encoder = nn.Sequential(
            nn.Conv2d(channels, config.filters, 3), nn.ReLU(), nn.Conv2d(config.filters, config.filters, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(config.dropout), nn.Flatten(),
        )  # fmt: skip
        return encoder, config.filters * ((height - 4) // 2) * ((width - 4) // 2)
    if config.encoder == "mlp":
        inputs = int(np.prod(input_shape))
        encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(inputs, config.mlp_hidden), nn.ReLU(), nn.Dropout(config.dropout)
        )
        return encoder, config.mlp_hidden
    raise ConfigError(f"model.ovrdl.encoder={config.encoder!r} is not one of {', '.join(ENCODERS)}")


class OVRDL(nn.Module):
    def __init__(self, config: OVRDLConfig, input_shape: tuple[int, ...], classes: list[int], priors: list[np.ndarray]):
        super().__init__()
        self.config = config
        self.encoder, encoded = build_encoder(config, input_shape)
        attributes = len(classes)
        self.generators = nn.ModuleList(
            nn.Sequential(nn.Linear(encoded, config.feature_dim), nn.Tanh()) for _ in range(attributes)
        )
        self.discriminators = nn.ModuleList(
            nn.ModuleList(nn.Linear(config.feature_dim, c) for c in classes) for _ in range(attributes)
        )  # D[k][j]
        lam = independence_matrix(config, attributes)
        target_weights = np.array([config.identity_pair_weight] + [config.domain_pair_weight] * (attributes - 1))
        self.register_buffer(
            "pair_weights", torch.tensor(target_weights[None, :] * lam.T, dtype=torch.float32)
        )  # w[k, j] = w_j · λ[j, k]
        self.own_weights = target_weights.tolist()  # the own-attribute terms of (c): w_k, not scaled by λ
        for index, prior in enumerate(priors):
            self.register_buffer(f"prior_{index}", torch.tensor(prior, dtype=torch.float32))
        self.task_weights = [1.0] + [config.domain_task_weight] * (attributes - 1)

    @property
    def attributes(self) -> int:
        return len(self.generators)

    def prior(self, attribute: int) -> torch.Tensor:
        return getattr(self, f"prior_{attribute}")

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        encoded = self.encoder(images)
        return [generator(encoded) for generator in self.generators]

    def feature_with_fixed_generator(self, encoded: torch.Tensor, attribute: int) -> torch.Tensor:
        """f_k = G_k(encoded) with G_k's parameters held fixed: the gradient reaches the encoder only."""
        generator = self.generators[attribute]
        fixed = {name: value.detach() for name, value in generator.named_parameters()}
        return functional_call(generator, fixed, (encoded,))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Identity probabilities D_00(f_0) [B, C_0]."""
        return torch.softmax(self.discriminators[0][0](self.features(images)[0]), dim=1)

    def pairs(self) -> list[tuple[int, int]]:
        """(k, j), j ≠ k, with a nonzero weight w_kj: the terms of the adversarial losses."""
        return [
            (k, j)
            for k in range(self.attributes)
            for j in range(self.attributes)
            if j != k and self.pair_weights[k, j] > 0
        ]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """task: E, G, D_kk; discriminator: D_kj (j ≠ k); adversary: E, G."""
        encoder_generators = [*self.encoder.parameters(), *self.generators.parameters()]
        own = [p for k in range(self.attributes) for p in self.discriminators[k][k].parameters()]
        cross = [
            p for k, row in enumerate(self.discriminators) for j, d in enumerate(row) if j != k for p in d.parameters()
        ]
        return {"task": encoder_generators + own, "discriminator": cross, "adversary": encoder_generators}


def task_loss(model: OVRDL, images: torch.Tensor, labels: torch.Tensor):
    """(a) Σ_k w_k · CE(D_kk(f_k), y_k)."""
    features = model.features(images)
    terms = [functional.cross_entropy(model.discriminators[k][k](f), labels[:, k]) for k, f in enumerate(features)]
    loss = sum(w * t for w, t in zip(model.task_weights, terms, strict=True))
    return loss, {"task_identity": float(terms[0].detach())}


def _adversarial(model: OVRDL, features: list[torch.Tensor], labels: torch.Tensor, one_versus_rest: bool):
    loss = features[0].new_zeros(())
    for k, j in model.pairs():
        predicted = torch.softmax(model.discriminators[k][j](features[k]), dim=1)
        if one_versus_rest:
            target = one_versus_rest_targets(labels[:, j], model.prior(j))
        else:
            target = functional.one_hot(labels[:, j], predicted.shape[1]).to(predicted.dtype)
        loss = loss + model.pair_weights[k, j] * functional.mse_loss(predicted, target)
    return loss


def discriminator_loss(model: OVRDL, images: torch.Tensor, labels: torch.Tensor):
    """(b) Σ_{j≠k} w_kj · MSE(D_kj(f_k), onehot(y_j)) on frozen features."""
    with torch.no_grad():
        features = model.features(images)
    return _adversarial(model, features, labels, one_versus_rest=False), {}


def adversary_loss(model: OVRDL, images: torch.Tensor, labels: torch.Tensor):
    """(c) Σ_{j≠k} w_kj · MSE(D_kj(f_k), ỹ_j) [+ Σ_k w_k · MSE(D_kk(f_k), onehot(y_k))], routed per
    `config.routing`; only E and G are stepped (D is frozen by the caller)."""
    encoded = model.encoder(images)
    live = [generator(encoded) for generator in model.generators]
    last = model.attributes - 1
    if model.config.routing == "effective":  # G_{K-1} untrained by (c); every term reaches E and the other G_k
        live[last] = model.feature_with_fixed_generator(encoded, last)
    loss = _adversarial(model, live, labels, one_versus_rest=True)
    if model.config.adversary_own_term:
        for k in range(model.attributes):
            own = live[k] if model.config.routing == "effective" else model.feature_with_fixed_generator(encoded, k)
            predicted = torch.softmax(model.discriminators[k][k](own), dim=1)
            target = functional.one_hot(labels[:, k], predicted.shape[1]).to(predicted.dtype)
            loss = loss + model.own_weights[k] * functional.mse_loss(predicted, target)
    return loss, {}


def as_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 images [n, 3, h, w] as the float inputs in [0, 1] the networks read."""
    return torch.from_numpy(images).float() / 255


@torch.no_grad()
def stage1_features(model: OVRDL, images: np.ndarray, device: torch.device, batch_size: int = 512):
    """Every image's stage-1 features [n, K, d] and per-attribute probabilities D_kk(f_k), from the model in
    eval mode."""
    model.eval()
    pixels = as_pixels(images)
    chunks = [model.features(pixels[i : i + batch_size].to(device)) for i in range(0, len(pixels), batch_size)]
    features = [torch.cat([chunk[k] for chunk in chunks]) for k in range(model.attributes)]
    probabilities = [torch.softmax(model.discriminators[k][k](f), 1).cpu().numpy() for k, f in enumerate(features)]
    return torch.stack(features, 1).cpu().numpy(), probabilities

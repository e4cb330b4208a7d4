"""Flax NNX networks of the neural inverse solvers.

* :class:`AdaptiveResNet` — EAND-ARN's network: an input embedding, ``n_blocks`` adaptive residual
  blocks ``x ← α·F(x) + (1 − α)·x`` with a trainable scalar ``α`` per block initialised at 0 (as
  in PirateNets: the network starts as its shallow part, embedding → head, and deepens as the
  α's grow), and a linear head. ``adaptive=False`` gives the plain-residual ablation
  ``x ← F(x) + x``.
* :class:`PDLNet` — the P-DL predecessor's plain MLP with a trainable activation slope.
* :class:`FreeGrid` — no network: the fields ``U, V (n, t)`` themselves are the parameters (the
  reference that shows what the network parametrisation adds to the same loss).

Training code never calls these modules inside jitted loops through NNX's stateful API: it
splits them once (``nnx.split``) and works on the pure ``(graphdef, params)`` pair.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["ACTIVATIONS", "AdaptiveBlock", "AdaptiveResNet", "PDLNet", "FreeGrid"]

ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "sin": jnp.sin,
    "relu": jax.nn.relu,
}


def _activation(name: str) -> Callable:
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


class FourierFeatures(nnx.Module):
    """Random Fourier features ``[cos(2π B x), sin(2π B x)]`` with a fixed Gaussian ``B``."""

    def __init__(self, in_features: int, n_features: int, scale: float, *, rngs: nnx.Rngs):
        self.B = nnx.Variable(scale * jax.random.normal(rngs.params(), (in_features, n_features)))

    def __call__(self, x):
        z = 2.0 * jnp.pi * x @ self.B[...]
        return jnp.concatenate([jnp.cos(z), jnp.sin(z)], axis=-1)


class AdaptiveBlock(nnx.Module):
    """``x ← α·F(x) + (1 − α)·x`` with ``F`` = ``depth`` dense layers; ``α`` trainable, starts at 0."""

    def __init__(self, width: int, activation: str = "tanh", depth: int = 2, adaptive: bool = True, *, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(width, width, rngs=rngs) for _ in range(depth)])
        self.act = _activation(activation)
        self.adaptive = adaptive
        self.alpha = nnx.Param(jnp.zeros(())) if adaptive else None

    def __call__(self, x):
        h = x
        for layer in self.layers:
            h = self.act(layer(h))
        if not self.adaptive:
            return h + x
        a = self.alpha[...]
        return a * h + (1.0 - a) * x


class AdaptiveResNet(nnx.Module):
    """Embedding → adaptive residual blocks → linear head.

    Args:
        in_features, out_features: input and output sizes (body-signal mode: ``m`` → ``2n``;
            coordinate mode: 4 → 2).
        width: hidden width.
        n_blocks: number of residual blocks.
        activation: name in :data:`ACTIVATIONS`.
        block_depth: dense layers inside each block's ``F``.
        fourier_features: number of random Fourier features of the input (0: none), with
            ``fourier_scale`` the standard deviation of their frequencies.
        adaptive: ``False`` gives plain residual blocks (ablation).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        width: int = 128,
        n_blocks: int = 3,
        activation: str = "tanh",
        block_depth: int = 2,
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        adaptive: bool = True,
        rngs: nnx.Rngs,
    ):
        self.fourier = (
            FourierFeatures(in_features, fourier_features, fourier_scale, rngs=rngs) if fourier_features else None
        )
        n_in = 2 * fourier_features if fourier_features else in_features
        self.embed = nnx.Linear(n_in, width, rngs=rngs)
        self.act = _activation(activation)
        self.blocks = nnx.List(
            [AdaptiveBlock(width, activation, block_depth, adaptive, rngs=rngs) for _ in range(n_blocks)]
        )
        self.head = nnx.Linear(width, out_features, rngs=rngs)

    def features(self, x):
        """Hidden features before the head (the shallow part when every α is 0)."""
        if self.fourier is not None:
            x = self.fourier(x)
        h = self.act(self.embed(x))
        for block in self.blocks:
            h = block(h)
        return h

    def __call__(self, x):
        return self.head(self.features(x))


class PDLNet(nnx.Module):
    """P-DL's plain MLP: ``n_layers`` × ``width`` tanh layers with a trainable slope ``a``
    (activation ``tanh(n·a·x)`` with fixed ``n`` and ``a`` initialised to ``1/n``, Jagtap et
    al. 2020's adaptive activation as used in the P-DL code)."""

    def __init__(self, in_features: int = 4, out_features: int = 2, *, width: int = 10, n_layers: int = 5,
                 slope_scale: float = 10.0, rngs: nnx.Rngs):
        sizes = [in_features] + [width] * n_layers
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.head = nnx.Linear(width, out_features, rngs=rngs)
        self.slope_scale = slope_scale
        self.slope = nnx.Param(jnp.asarray(1.0 / slope_scale))

    def __call__(self, x):
        s = self.slope_scale * self.slope[...]
        # Features-major, (width, points): 10-wide layers over 10^4-10^5 points ran 1.6x faster
        # (forward and backward, CPU) than as (points, width), whose rows are shorter than a vector.
        # The slope scales the (width²) weights, not the (width × points) pre-activations.
        h = x.reshape(-1, x.shape[-1]).T
        for layer in self.layers:
            h = jnp.tanh((s * layer.kernel[...]).T @ h + (s * layer.bias[...])[:, None])
        out = self.head.kernel[...].T @ h + self.head.bias[...][:, None]
        return out.T.reshape(x.shape[:-1] + (out.shape[0],))


class FreeGrid(nnx.Module):
    """The heart fields as free variables: ``U, V (n, t)``, starting at zero (added to a start
    solution, they are its correction). Indexed by time sample, not called on inputs."""

    def __init__(self, n_nodes: int, n_samples: int, dtype=jnp.float32):
        self.U = nnx.Param(jnp.zeros((n_nodes, n_samples), dtype))
        self.V = nnx.Param(jnp.zeros((n_nodes, n_samples), dtype))

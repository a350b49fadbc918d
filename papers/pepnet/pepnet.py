"""PEPNet (Chang et al., KDD 2023): EPNet personalizes the shared embeddings per domain, PPNet the hidden
units of every task tower per user, item and author; both through Gate NUs.

    EPNet:  delta_domain = GateNU(E(F_d) ⊕ stop_grad(E)),   O_ep = delta_domain ⊗ E
    PPNet:  O_prior = E(F_u) ⊕ E(F_i) ⊕ E(F_a)
            delta_task^(l) = GateNU^(l)(O_prior ⊕ stop_grad(O_ep)), split into one gate per task
            O_pp^(l) = delta_task^(l) ⊗ H^(l),   H^(l+1) = f(O_pp^(l) W^(l) + b^(l)),   H^(0) = O_ep
    The gates scale every hidden layer H^(l), l >= 1, of every task tower (the paper's Figure 3; TorchEasyRec's
    tzrec/modules/personalized_net.py, PPNet.forward, gates each hidden layer's output after its activation);
    the input O_ep and the logit layer are not gated.

`use_epnet=False` (the "PPNet only" ablation) feeds E to the towers and gates PPNet on stop_grad(E);
`use_ppnet=False` ("EPNet only") runs plain towers on O_ep; `stop_gradient=False` removes both stops;
`gate_inputs=True` (our ablation) gates every linear layer's input instead, O_ep included.
"""

from __future__ import annotations

import torch
from torch import nn

from papers.pepnet.layers import FeatureEmbedding, GateNU, TaskTowers


class PEPNet(nn.Module):
    def __init__(
        self,
        vocabulary: list[int],
        general: list[int],
        domain: list[int],
        prior: list[int],
        tasks: int,
        embedding_dim: int,
        tower_dims: list[int],
        gate_hidden_dim: int,
        gamma: float,
        stop_gradient: bool = True,
        use_epnet: bool = True,
        use_ppnet: bool = True,
        gate_inputs: bool = False,
    ):
        super().__init__()
        self.general, self.domain, self.prior = general, domain, prior
        self.embedding = FeatureEmbedding(vocabulary, embedding_dim)
        self.stop_gradient, self.use_epnet, self.use_ppnet = stop_gradient, use_epnet, use_ppnet
        self.gate_inputs = gate_inputs
        width = len(general) * embedding_dim
        if use_epnet:
            self.domain_gate = GateNU(len(domain) * embedding_dim + width, width, gate_hidden_dim, gamma)
        self.towers = TaskTowers(width, tower_dims, tasks)
        if use_ppnet:
            prior_width = len(prior) * embedding_dim
            self.task_gates = nn.ModuleList(
                GateNU(prior_width + width, tasks * layer_width, gate_hidden_dim, gamma)
                for layer_width in self.towers.gate_widths(gate_inputs)
            )
        self.tasks = tasks

    def _stop(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach() if self.stop_gradient else x

    def epnet(self, features: torch.Tensor) -> torch.Tensor:
        """O_ep (or E itself without EPNet)."""
        shared = self.embedding(features, self.general)  # E
        if not self.use_epnet:
            return shared
        domain_side = self.embedding(features, self.domain)  # E(F_d)
        delta = self.domain_gate(torch.cat([domain_side, self._stop(shared)], dim=-1))
        return delta * shared

    def ppnet_gates(self, features: torch.Tensor, o_ep: torch.Tensor) -> list[torch.Tensor]:
        """delta_task^(l) of every gated tower layer, [B, T, width_l] each."""
        prior = self.embedding(features, self.prior)  # O_prior
        gate_input = torch.cat([prior, self._stop(o_ep)], dim=-1)
        return [gate(gate_input).view(len(features), self.tasks, -1) for gate in self.task_gates]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        features = batch["features"]
        o_ep = self.epnet(features)
        gates = self.ppnet_gates(features, o_ep) if self.use_ppnet else None
        return self.towers(o_ep, gates, self.gate_inputs)

"""Neural inverse solvers: EAND-ARN (adaptive ResNet + numerically differentiated AP loss) and
its predecessor P-DL (plain MLP + autodiff in time)."""

from ._eand_arn import EANDARNConfig, NeuralFit, build_model, eand_arn, recovery_from_potential, start_solution
from ._fields import FieldInputs, evaluate_fields, make_inputs
from ._loss import TERMS, combine_terms, physics_loss, without_reaction_discrepancy
from ._networks import AdaptiveBlock, AdaptiveResNet, PDLNet
from ._starts import posed_template, template_start
from ._train import GradNormBalance, TrainConfig, TrainState, grad_norm_weights, make_optimizer, make_step, run_training

__all__ = [
    "EANDARNConfig", "NeuralFit", "build_model", "eand_arn", "recovery_from_potential", "start_solution",
    "template_start", "posed_template",
    "FieldInputs", "evaluate_fields", "make_inputs",
    "TERMS", "combine_terms", "physics_loss", "without_reaction_discrepancy",
    "AdaptiveBlock", "AdaptiveResNet", "PDLNet",
    "TrainConfig", "TrainState", "GradNormBalance", "grad_norm_weights", "make_optimizer", "make_step", "run_training",
]

"""Guidance observers: they see every guided model call (rows, step, total) and what they change
is what the denoiser uses (the engine's side of A1111's ``on_cfg_denoiser`` family)."""

from __future__ import annotations

import torch

from modules.sampling.denoiser import CFGDenoiser, GuidedCall, Observation, ScheduledCFGDenoiser
from modules.sampling.samplers import sample_euler
from tests.sampling.test_denoiser import ContextModel

LADDER = torch.tensor([4.0, 2.0, 1.0, 0.0])


class Recorder:
    """Records each call; optional edits at the three points."""

    def __init__(self, before=None, outputs=None, guided=None):
        self.edits = before, outputs, guided
        self.calls: list[tuple[int, int, int, int, int]] = []

    def before_model(self, call: GuidedCall) -> None:
        self.calls.append((call.step, call.steps, call.x.shape[0], call.cond.shape[0], call.uncond.shape[0]))
        if self.edits[0]:
            self.edits[0](call)

    def after_model(self, outputs, call):
        return self.edits[1](outputs) if self.edits[1] else outputs

    def after_guidance(self, denoised, call):
        return self.edits[2](denoised) if self.edits[2] else denoised


def conditionings():
    return torch.full((2, 77, 8), 1.0), torch.full((2, 77, 8), -1.0)


def test_a_watching_observer_changes_nothing_and_sees_each_step_with_all_rows():
    cond, uncond = conditionings()
    x = torch.arange(36.0).reshape(2, 2, 3, 3)
    plain = sample_euler(CFGDenoiser(ContextModel(), cond, uncond, 7.0), x, LADDER, noise=None)
    recorder = Recorder()
    watched = sample_euler(CFGDenoiser(ContextModel(), cond, uncond, 7.0, observation=Observation([recorder], LADDER)),
                           x, LADDER, noise=None)
    assert torch.allclose(watched, plain)
    assert recorder.calls == [(0, 3, 4, 2, 2), (1, 3, 4, 2, 2), (2, 3, 4, 2, 2)]


def test_what_observers_change_is_what_the_denoiser_uses():
    cond, uncond = conditionings()
    x, sigma = torch.zeros(2, 1, 3, 3), torch.tensor([2.0, 2.0])

    def uncond_as_cond(call):
        call.uncond = call.cond

    same_texts = CFGDenoiser(ContextModel(), cond, uncond, 7.0,
                             observation=Observation([Recorder(before=uncond_as_cond)], LADDER))(x, sigma)
    conditional_only = CFGDenoiser(ContextModel(), cond, uncond, 1.0)(x, sigma)
    assert torch.allclose(same_texts, conditional_only)  # uncond + 7 (cond - cond) = cond

    halved = CFGDenoiser(ContextModel(), cond, uncond, 7.0,
                         observation=Observation([Recorder(outputs=lambda out: out * 0.5)], LADDER))(x, sigma)
    plain = CFGDenoiser(ContextModel(), cond, uncond, 7.0)(x, sigma)
    assert torch.allclose(halved, plain * 0.5)  # the combination is linear in the rows
    replaced = CFGDenoiser(ContextModel(), cond, uncond, 7.0,
                           observation=Observation([Recorder(guided=torch.zeros_like)], LADDER))(x, sigma)
    assert torch.count_nonzero(replaced) == 0


def test_observers_see_the_uncond_rows_even_at_scale_one_and_with_texts_of_different_lengths():
    cond, uncond = torch.full((1, 154, 8), 1.0), torch.full((1, 77, 8), -1.0)
    recorder, inner = Recorder(), ContextModel()
    x = torch.zeros(1, 1, 3, 3)
    result = CFGDenoiser(inner, cond, uncond, 1.0, observation=Observation([recorder], LADDER))(x, torch.tensor([1.0]))
    assert recorder.calls == [(2, 3, 2, 1, 1)] and [call[0] for call in inner.calls] == [1, 1]
    assert torch.allclose(result, torch.full_like(x, 2.0))  # the conditional prediction, as without observers


def test_scheduled_guidance_passes_every_and_part_then_the_uncond_rows():
    class Source:
        table = torch.tensor([1.0, 2.0, 5.0, 0.25]).reshape(4, 1, 1)

        def rows_at(self, steps):
            return [0, 1, 2], [0, 0, 1], [0.5, 2.0, 1.0], [3, 3]

    def inner(x, sigma, context):
        return context.reshape(-1, 1, 1, 1).expand_as(x).clone()

    ladder = torch.tensor([2.0, 1.0, 0.0])
    recorder = Recorder()
    watched = ScheduledCFGDenoiser(inner, Source(), ladder, 3.0, observation=Observation([recorder], ladder))
    plain = ScheduledCFGDenoiser(inner, Source(), ladder, 3.0)
    x = torch.zeros(2, 1, 2, 2)
    assert torch.allclose(watched(x, torch.tensor(1.0)), plain(x, torch.tensor(1.0)))
    assert recorder.calls == [(1, 2, 5, 3, 2)]  # three cond rows (two AND parts of image 0), two uncond

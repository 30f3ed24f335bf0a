"""An unstructured cut with set epochs reaches its target within the first half and recovers at it."""

from pathlib import Path

import pytest

from pruning import schedule
from pruning.datasets import Data, digits
from pruning.run import run
from pruning.spec import PruneSpec


@pytest.mark.parametrize(
    ("epochs", "rounds", "per_round"),
    [(5, 3, [1, 1, 3]), (3, 2, [1, 2]), (2, 2, [1, 1]), (1, 1, [1]), (0, 1, [0]), (29, 5, [4, 4, 3, 3, 15])],
)
def test_the_last_round_gets_half_the_epochs(epochs: int, rounds: int, per_round: list[int]) -> None:
    assert schedule.rounds_for(epochs, 5, 0.5) == rounds
    assert schedule.epochs_per_round(epochs, rounds, 0.5) == per_round
    assert sum(per_round) == epochs


def test_only_an_unstructured_cut_with_set_epochs_is_split_unevenly() -> None:
    assert schedule.recovery_share(PruneSpec(granularity="unstructured", epochs=5)) == schedule.RECOVERY_SHARE == 0.5
    assert schedule.recovery_share(PruneSpec(granularity="unstructured")) is None  # the default budget stops early
    assert schedule.recovery_share(PruneSpec(granularity="channel", schedule="polynomial", epochs=5)) is None
    assert PruneSpec(granularity="unstructured", epochs=5).steps == 3
    assert PruneSpec(granularity="unstructured", epochs=3).steps == 2
    assert PruneSpec(granularity="unstructured").steps == 5
    assert PruneSpec(granularity="channel", schedule="polynomial", epochs=5).steps == 5
    # Rounds the job sets are kept, and never more epochs than it set.
    assert PruneSpec(granularity="unstructured", epochs=5, steps=5).steps == 5
    assert schedule.epochs_per_round(5, 5, 0.5) == [1, 1, 1, 1, 1]
    assert schedule.epochs_per_round(3, 5, 0.5) == [1, 1, 0, 0, 1]
    assert schedule.epochs_per_round(5, 5, None) == [1] * 5
    assert schedule.epochs_per_round(29, 5, None) == [6] * 5  # equal rounds, as before


def test_a_five_epoch_cut_reaches_the_target_after_two_epochs_and_says_so(digits_model: Path, tmp_path: Path) -> None:
    d = digits()
    data = Data(d.x_train[:300], d.y_train[:300], d.x_val, d.y_val, name="digits-small")
    spec = PruneSpec(granularity="unstructured", sparsity=0.8, epochs=5, learning_rate=1e-3)
    report = run(digits_model, data, spec, tmp_path).report
    plan = report["schedule"]
    assert plan["steps"] == 3
    assert plan["epochs_per_round"] == [1, 1, 3]
    assert [len(r["train_loss"]) for r in plan["rounds"]] == [1, 1, 3]
    reached = [r["sparsity"] for r in plan["rounds"]]
    assert reached == pytest.approx([schedule.Polynomial(0.8, 3)(t) for t in (1, 2, 3)], abs=1e-6)
    assert reached[1] < 0.8 == reached[2]
    assert "after 2 of 5 planned epoch(s); the last 3 fine-tune at it" in plan["epochs_note"]
    assert report["sparsity"]["overall"] == pytest.approx(0.8, abs=1e-3)

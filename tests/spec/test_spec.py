"""RunSpec: validated once, errors that name the field, a JSON round trip, and the CLI naming the flag."""

from __future__ import annotations

import dataclasses

import pytest

from salrt.cli import main
from salrt.spec import RunSpec, SpecError


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"model": "nosuch"}, "model"),
        ({"backend": "cuda-magic"}, "backend"),
        ({"device": "gpu"}, "device"),
        ({"precision": "int4"}, "precision"),
        ({"kernels": "cutlass"}, "kernels"),
        ({"steps": 0}, "steps"),
        ({"steps": True}, "steps"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"retries": -1}, "retries"),
        ({"bpe": "merges.txt"}, "bpe"),
        ({"checkpoint": "a.pth", "random_weights": True}, "random_weights"),
        ({"backbones": (("", "x.pt"),)}, "backbones"),
    ],
)
def test_bad_fields_are_named(changes: dict, field: str) -> None:
    with pytest.raises(SpecError) as e:
        RunSpec(**changes).validated()
    assert e.value.field == field and field in str(e.value)


def test_valid_spec_round_trips() -> None:
    spec = RunSpec(model="MUBiC", backbones={"vggish": "v.pth", "mvit": "m.pth"}, steps=None).validated()  # type: ignore[arg-type]
    assert spec.backbones == (("mvit", "m.pth"), ("vggish", "v.pth"))  # a mapping becomes sorted pairs
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert dataclasses.is_dataclass(spec) and hash(spec) == hash(RunSpec.from_dict(spec.to_dict()))
    with pytest.raises(SpecError, match="not a RunSpec field"):
        RunSpec.from_dict({"modle": "diffsal"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.model = "x"  # type: ignore[misc]


def test_cli_names_the_flag(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """A RunSpec field's error reaches the user with the flag it came from, on one line, exit 2."""
    from salrt.io import make_clip

    clip = make_clip(tmp_path / "a.mp4", seed=1, seconds=0.2, width=96, height=64)
    for args, flag in (
        (["--device", "gpu"], "--device"),
        (["--backend", "nosuch"], "--backend"),
        (["--model", "nosuch"], "--model"),
        (
            [
                "--timeout",
                "5",
                "--retries",
                "1",
                "--model",
                "diffsal",
                "--kernels",
                "torch",
                "--checkpoint",
                str(tmp_path / "x.pth"),
                "--random-weights",
            ],
            "--random-weights",
        ),
    ):
        rc = main(["run", str(clip.path), "-o", str(tmp_path / "o"), "--config", "tiny", "--quiet", *args])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.count("\n") == 0 and err.startswith("salrt: error: ") and flag in err, (args, err)

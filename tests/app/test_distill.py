"""salrt distill end to end on tiny inputs: the teacher's maps cached by teacher, the student
trained and reported on held-out videos, and the bad inputs the issue names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from salrt.app.demo import bundled_checkpoint
from salrt.app.distill import DistillSettings, distill
from salrt.cli import main
from salrt.distill import TeacherCacheError
from salrt.errors import UsageError
from salrt.io import make_clip
from salrt.spec import RunSpec

TEACHER = RunSpec(model="diffsal", config="tiny", random_weights=True, backend="torch", steps=2)
FAST = DistillSettings(student_config="tiny", epochs=1, batch=2, sequence=4, hop=4, held_out=0.34)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    for k in range(3):
        make_clip(d / f"v{k}.mp4", seed=k, seconds=0.6, width=96, height=64)
    make_clip(d / "silent.mkv", seed=5, seconds=0.6, width=96, height=64, sample_rate=None)
    (d / "broken.mp4").write_bytes(b"not a video at all" * 50)
    return d


def test_distill_reports_and_names_every_skipped_video(videos: Path, tmp_path: Path) -> None:
    warned: list[str] = []
    res = distill(TEACHER, tmp_path / "o", FAST, videos=str(videos), warn=warned.append)
    rep = json.loads(res.report_path.read_text())
    assert rep["videos"]["unreadable"] and "broken.mp4" in rep["videos"]["unreadable"][0]
    assert rep["videos"]["silent"] == ["silent"]
    assert any("broken.mp4" in w for w in warned) and sum("no audio stream" in w for w in warned) == 1
    assert rep["videos"]["held_out"] == ["v1", "v2"] and rep["videos"]["train"] == ["silent", "v0"]
    assert set(rep["held_out"]["student_vs_teacher"]) == {"cc", "kld", "sim"}
    assert rep["student"]["gflops_per_map"] > 0 and rep["student"]["maps_per_s_torch"] > 0
    assert rep["teacher_cost"]["seconds_per_map"] > 0
    assert (res.student / "model.safetensors").is_file() and (tmp_path / "o" / "report.md").is_file()
    # every frame's teacher map is cached, one file per video, and a second pass reuses them
    maps = np.load(tmp_path / "o" / "teacher_maps" / "v0.npz")["maps"]
    assert maps.shape[0] == 15
    again = distill(TEACHER, tmp_path / "o", FAST, videos=str(videos))
    assert again.report["teacher_cost"] is None  # nothing was recomputed


def test_a_cache_of_another_teacher_is_refused(videos: Path, tmp_path: Path) -> None:
    distill(TEACHER, tmp_path / "o", FAST, videos=[str(videos / "v0.mp4"), str(videos / "v1.mp4")])
    other = TEACHER.replace(random_weights=False, checkpoint=str(bundled_checkpoint()))
    with pytest.raises(TeacherCacheError, match="teacher maps made by diffsal .*random weights"):
        distill(other, tmp_path / "o", FAST, videos=[str(videos / "v0.mp4"), str(videos / "v1.mp4")])


def test_a_student_cannot_teach(videos: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot be the teacher"):
        distill(TEACHER.replace(model="student"), tmp_path / "o", FAST, videos=str(videos))
    ck = tmp_path / "stud"
    import salrt
    from salrt.models.synthetic import load_synthetic_weights

    salrt.save_checkpoint(load_synthetic_weights(salrt.load_model("student", config="tiny")), ck)
    with pytest.raises(UsageError, match="a student checkpoint, not a teacher's"):
        distill(TEACHER.replace(checkpoint=str(ck), random_weights=False), tmp_path / "o", FAST, videos=str(videos))


def test_cli_errors_are_one_line(videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ck = tmp_path / "stud"
    import salrt
    from salrt.models.synthetic import load_synthetic_weights

    salrt.save_checkpoint(load_synthetic_weights(salrt.load_model("student", config="tiny")), ck)
    assert main(["distill", "--teacher", "diffsal", "--checkpoint", str(ck), "--videos", str(videos),
                 "-o", str(tmp_path / "o"), "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a student checkpoint" in err[0]
    assert main(["distill", "--videos", str(tmp_path / "nothing"), "--random-weights", "-o", str(tmp_path / "o"),
                 "--quiet"]) == 2  # fmt: skip
    assert "no such folder or list file" in capsys.readouterr().err

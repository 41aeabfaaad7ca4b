"""The command line through CliRunner: help, exit codes, stdout versus stderr, JSON, pipes."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pydicom
import pytest
from click.testing import CliRunner, Result

from pdf2dcm import errors
from pdf2dcm.cli import EXIT_CODES, ExitStatus, cli, exit_status_for
from tests.conftest import PdfFactory

EXAMPLE = Path(__file__).parents[2] / "examples" / "HelloWorld2.pdf"


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pdf2dcm: error: ")
    return lines[0]


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            paths += _command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def test_every_command_has_help_with_examples() -> None:
    paths = _command_paths(cli)
    assert sorted(" ".join(p) for p in paths if p) == [
        "check",
        "echo",
        "encode",
        "extract",
        "fetch",
        "jobs",
        "jobs cancel",
        "jobs list",
        "jobs pause",
        "jobs resubmit",
        "jobs resume",
        "jobs show",
        "jobs wait",
        "ls",
        "review",
        "show",
        "upload",
        "watch",
    ]
    for path in paths:
        result = run(*path, "--help")
        assert result.exit_code == 0, path
        assert "Examples:" in result.stdout, path


def test_main_help_documents_exit_codes() -> None:
    text = run("--help").stdout
    for status in ExitStatus:
        assert f"  {status.value} " in text


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == "pdf2dcm, version 0.2.0\n"


def test_every_error_class_has_an_exit_code() -> None:
    classes = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.Pdf2DcmError)
    ]
    assert set(classes) == set(EXIT_CODES)
    assert exit_status_for(errors.NotAPdfError("x")) == ExitStatus.INPUT
    assert exit_status_for(errors.JobTimeoutError("x")) == ExitStatus.JOB_TIMEOUT


def test_startup_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from pdf2dcm.cli import main\n"
        "for argv in (['pdf2dcm', '--version'], ['pdf2dcm', '--help']):\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    if argv[1] == '--version':\n"
        "        print('VERSION', sorted({'logging', 'dataclasses'} & set(sys.modules)))\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pydicom', 'requests', 'rich'})\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stderr
    # --version is click and the root alone: logging and dataclasses were 6 ms of its 56.
    assert "VERSION []" in done.stdout


def test_server_commands_that_build_no_dataset_skip_pydicom() -> None:
    code = (
        "import sys\n"
        "import pdf2dcm.cli, pdf2dcm.fetch, pdf2dcm.jobs\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pydicom', 'rich'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_encode_example_next_to_input(tmp_path: Path) -> None:
    source = tmp_path / "HelloWorld2.pdf"
    source.write_bytes(EXAMPLE.read_bytes())
    result = run("encode", str(source), "--tag", "PatientName=Benjamino")
    assert result.exit_code == 0, result.stderr
    target = tmp_path / "HelloWorld2.dcm"
    assert result.stdout == f"{source} -> {target} (900 B PDF)\n"
    assert result.stderr == ""
    ds = pydicom.dcmread(target)
    assert str(ds.PatientName) == "Benjamino"
    assert ds.DocumentTitle == "Hello World 2"


def test_encode_json_shape(pdf_file: PdfFactory, tmp_path: Path) -> None:
    sources = [pdf_file(1001), pdf_file(2000)]
    result = run(
        "encode", *map(str, sources), "-d", str(tmp_path / "out"), "--json", "--same-series"
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [list(r) for r in records] == [
        [
            "Kind",
            "Input",
            "Output",
            "PatientID",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
            "DocumentTitle",
            "Size",
            "SHA256",
        ]
    ] * 2
    assert {r["Kind"] for r in records} == {"encoded"}
    for record, source in zip(records, sources, strict=True):
        assert record["Input"] == str(source)
        assert record["Output"] == str(tmp_path / "out" / source.with_suffix(".dcm").name)
        assert record["Size"] == source.stat().st_size
        assert record["SHA256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        ds = pydicom.dcmread(record["Output"])
        assert ds.SOPInstanceUID == record["SOPInstanceUID"]
    assert records[0]["SeriesInstanceUID"] == records[1]["SeriesInstanceUID"]
    numbers = [pydicom.dcmread(r["Output"]).InstanceNumber for r in records]
    assert numbers == [1, 2]


def test_pipe_encode_then_extract(pdf_file: PdfFactory) -> None:
    data = pdf_file(5001).read_bytes()
    encoded = run("encode", "-", "--tag", "PatientID=7", stdin=data)
    assert encoded.exit_code == 0, encoded.stderr
    assert encoded.stdout_bytes[128:132] == b"DICM"
    extracted = run("extract", "-", stdin=encoded.stdout_bytes)
    assert extracted.exit_code == 0, extracted.stderr
    assert extracted.stdout_bytes == data


def test_extract_json(pdf_file: PdfFactory, tmp_path: Path) -> None:
    source = pdf_file(3000)
    run("encode", str(source), "-o", str(tmp_path / "x.dcm"))
    result = run("extract", str(tmp_path / "x.dcm"), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "Kind": "extracted",
        "Input": str(tmp_path / "x.dcm"),
        "Output": str(tmp_path / "x.pdf"),
        "Size": 3000,
        "SHA256": hashlib.sha256(source.read_bytes()).hexdigest(),
    }
    assert (tmp_path / "x.pdf").read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("missing", ["encode", "{d}/nope.pdf"], r"{d}/nope.pdf: no such file; check the path"),
        ("none", ["encode", "{d}"], r"{d} holds no \.pdf files"),
        ("empty", ["encode", "{d}/in.pdf"], r"{d}/in.pdf is empty; give a non-empty PDF"),
        ("text", ["encode", "{d}/in.pdf"], r"{d}/in.pdf is not a PDF \(it starts with b'hello"),
        (
            "pdf",
            ["encode", "{d}/in.pdf", "--tag", "PatientSex=X"],
            r"--tag PatientSex=X: PatientSex \(0010,0040\) = 'X': must be M, F or O",
        ),
        (
            "pdf",
            ["encode", "{d}/in.pdf", "--tag", "Patientname=X"],
            r"--tag Patientname=X: unknown DICOM keyword 'Patientname'; did you mean PatientName\?",
        ),
        (
            "pdf",
            ["encode", "{d}/in.pdf", "--tag", "SOPClassUID=1.2"],
            r"SOPClassUID \(0008,0016\) is set by pdf2dcm",
        ),
        ("pdf", ["extract", "{d}/in.pdf", "-o", "{d}/x.pdf"], r"is not a DICOM file"),
        (
            "empty",
            ["extract", "{d}/in.pdf", "-o", "{d}/x.pdf"],
            r"in.pdf is empty; give a DICOM file",
        ),
    ],
)
def test_bad_input_gives_one_line_exit_2_and_no_output(
    tmp_path: Path, pdf_file: PdfFactory, setup: str, args: list[str], message: str
) -> None:
    contents = {"empty": b"", "text": b"hello\n"}
    if setup in contents:
        (tmp_path / "in.pdf").write_bytes(contents[setup])
    elif setup == "pdf":
        pdf_file(name="in.pdf")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run(*(a.format(d=tmp_path) for a in args))
    assert result.exit_code == 2
    assert result.stdout == ""

    assert re.search(message.format(d=re.escape(str(tmp_path))), one_error_line(result))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_existing_output_is_not_overwritten(pdf_file: PdfFactory, tmp_path: Path) -> None:
    source = pdf_file(name="a.pdf")
    (tmp_path / "a.dcm").write_bytes(b"keep me")
    result = run("encode", str(source))
    assert result.exit_code == 2
    assert one_error_line(result).endswith("a.dcm already exists; use --overwrite to replace it")
    assert (tmp_path / "a.dcm").read_bytes() == b"keep me"
    assert run("encode", str(source), "--overwrite").exit_code == 0
    assert pydicom.dcmread(tmp_path / "a.dcm").EncapsulatedDocumentLength == 2000


def test_batch_goes_on_after_a_bad_file(pdf_file: PdfFactory, tmp_path: Path) -> None:
    good = pdf_file(name="good.pdf")
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"not a pdf")
    later = pdf_file(name="later.pdf")
    result = run("encode", str(good), str(bad), str(later))
    assert result.exit_code == 2
    assert (tmp_path / "good.dcm").exists()
    assert (tmp_path / "later.dcm").exists()
    assert not (tmp_path / "bad.dcm").exists()
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"pdf2dcm: error: {bad} is not a PDF (it starts with b'not a pd', not %PDF-); "
        "give a PDF file"
    )
    assert re.fullmatch(r"pdf2dcm: 3 files: 2 written, 1 failed in \d+\.\d s", lines[1])
    assert len(lines) == 2


def test_fail_fast_stops_at_the_first_bad_file(pdf_file: PdfFactory, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"not a pdf")
    later = pdf_file(name="later.pdf")
    result = run("encode", str(bad), str(later), "--fail-fast")
    assert result.exit_code == 2
    assert not (tmp_path / "later.dcm").exists()


def test_two_inputs_with_one_output_name_are_refused(pdf_file: PdfFactory, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = pdf_file(name="a/x.pdf")
    second = pdf_file(name="b/x.pdf")
    result = run("encode", str(first), str(second), "-d", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "would both be written to" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "x.dcm", "-d", "out"], "give -o/--output or -d/--outdir, not both"),
        (["-o", "-", "--json"], "--json prints to stdout"),
    ],
)
def test_contradicting_options_are_usage_errors(
    pdf_file: PdfFactory, args: list[str], message: str
) -> None:
    result = run("encode", str(pdf_file()), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_unexpected_errors_say_how_to_get_details(
    monkeypatch: pytest.MonkeyPatch, pdf_file: PdfFactory
) -> None:
    import pdf2dcm.encode

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pdf2dcm.encode, "_encode_one", broken)
    result = run("encode", str(pdf_file()))
    assert result.exit_code == 1
    assert result.stderr == (
        "pdf2dcm: unexpected error: RuntimeError: boom; run with --debug for details\n"
    )
    debug = run("--debug", "encode", str(pdf_file()))
    assert "Traceback (most recent call last)" in debug.stderr


def test_pdf_over_the_dicom_limit_is_refused(tmp_path: Path) -> None:
    huge = tmp_path / "huge.pdf"
    with huge.open("wb") as handle:
        handle.write(b"%PDF-1.7\n")
        handle.truncate(0xFFFFFFFF + 1)  # sparse: no disk space is used
    result = run("encode", str(huge))
    assert result.exit_code == 2
    assert one_error_line(result) == (
        f"pdf2dcm: error: {huge} is 4294967296 bytes; DICOM cannot hold a document over "
        "4294967294 bytes"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.pdf"]


def test_command_line_tags_override_the_tags_file(pdf_file: PdfFactory, tmp_path: Path) -> None:
    tags_file = tmp_path / "tags.json"
    tags_file.write_text(
        json.dumps({"PatientName": "File^Name", "PatientID": "F-1", "0008,1030": "Aus Datei"}),
        encoding="utf-8",
    )
    source = pdf_file()
    result = run(
        "encode", str(source), "--tags-file", str(tags_file), "--tag", "0010,0010=Cli^Name"
    )
    assert result.exit_code == 0, result.stderr
    ds = pydicom.dcmread(source.with_suffix(".dcm"))
    assert str(ds.PatientName) == "Cli^Name"
    assert ds.PatientID == "F-1"
    assert ds.StudyDescription == "Aus Datei"


def test_public_api_names_resolve() -> None:
    import pdf2dcm

    assert set(pdf2dcm.__all__) - {"__version__"} == set(pdf2dcm._LAZY)
    for name in pdf2dcm.__all__:
        assert getattr(pdf2dcm, name) is not None


def test_the_suite_ignores_the_developers_settings(tmp_path: Path) -> None:
    """The autouse fixtures of tests/conftest.py: no Orthanc settings, netrc or real HOME."""
    leaked = [
        name
        for name in os.environ
        if name.startswith(("ORTHANC_", "PDF2DCM_")) and name != "PDF2DCM_REQUIRE_ORTHANC"
    ]
    assert leaked == []
    home = Path(os.environ["HOME"])
    assert home.parent.parent == tmp_path.parent
    assert os.listdir(home) == []
    assert Path("~/.netrc").expanduser() == home / ".netrc"


def test_strict_turns_a_warning_into_an_error_and_writes_nothing(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.pdf"
    truncated.write_bytes(b"%PDF-1.4\n" + b"x" * 3000)
    relaxed = run("encode", str(truncated), "-o", str(tmp_path / "relaxed.dcm"))
    assert relaxed.exit_code == 0, relaxed.stderr
    assert "may be truncated" in relaxed.stderr
    strict = run("encode", str(truncated), "-o", str(tmp_path / "strict.dcm"), "--strict")
    assert strict.exit_code == 2
    assert "may be truncated (a warning, refused in strict mode)" in one_error_line(strict)
    assert not (tmp_path / "strict.dcm").exists()


def test_encode_takes_directories_and_a_rerun_over_its_outputs_goes_on(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "g"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.pdf", "b.pdf"):
        (folder / name).write_bytes(pdf_file(name=name).read_bytes())
    (folder / "sub" / "c.pdf").write_bytes(pdf_file(name="c.pdf").read_bytes())
    first = run("encode", str(folder))
    assert first.exit_code == 0, first.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["a.dcm", "a.pdf", "b.dcm", "b.pdf", "sub"]
    assert "subdirectories were not looked in; add --recursive" in first.stderr
    deep = run("encode", str(folder), "--recursive", "--overwrite")
    assert deep.exit_code == 0, deep.stderr
    assert (folder / "sub" / "c.dcm").exists()
    # As `encode g/*` would: the outputs of the last run are refused one by one, the PDFs
    # are encoded again, and the batch goes on.
    again = run("encode", *sorted(str(p) for p in folder.iterdir() if p.is_file()), "--overwrite")
    assert again.exit_code == 2
    assert again.stderr.count("error: ") == 2
    assert "a.dcm would be overwritten by its own output" in again.stderr
    assert re.search(r"4 files: 2 written, 2 failed in \d+\.\d s", again.stderr)


def test_encode_dry_run_prints_what_would_be_written_and_writes_nothing(
    pdf_file: PdfFactory, tmp_path: Path
) -> None:
    source = pdf_file(name="plan.pdf")
    result = run("encode", str(source), "--tag", "PatientID=PLAN", "--dry-run")
    assert result.exit_code == 0, result.stderr
    [plan] = [json.loads(line) for line in result.stdout.splitlines()]
    assert plan["Input"] == str(source)
    assert plan["Tags"]["PatientID"] == "PLAN"
    assert plan["Tags"]["DocumentTitle"] == "plan"
    assert plan["Tags"]["EncapsulatedDocumentLength"] == str(source.stat().st_size)
    assert "EncapsulatedDocument" not in plan["Tags"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.pdf"]
    refused = run("encode", str(source), "--tag", "PatientSex=X", "--dry-run")
    assert refused.exit_code == 2
    assert "PatientSex" in one_error_line(refused)


def test_a_shared_series_never_spans_two_patients(pdf_file: PdfFactory, tmp_path: Path) -> None:
    first = pdf_file(name="111_a.pdf")
    second = pdf_file(name="222_b.pdf")
    result = run(
        "encode", str(first), str(second), "--same-series", "--name-pattern", "{PatientID}_{*}.pdf"
    )
    assert result.exit_code == 2
    assert "PatientID (0010,0020): files of study" in one_error_line(result)
    assert "'111' and '222'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["111_a.pdf", "222_b.pdf"]
    # One patient's files may share a series.
    same = run("encode", str(first), "--same-series", "--name-pattern", "{PatientID}_{*}.pdf")
    assert same.exit_code == 0, same.stderr

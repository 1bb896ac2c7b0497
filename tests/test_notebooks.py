"""Jupyter notebooks through the installed command: cells reported by number, fixed in
place with every byte outside the changed sources kept, IPython syntax left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from flake8_device.lines import split_lines as _lines
from hypothesis import HealthCheck, given, settings, strategies as st

COMMAND = Path(sys.executable).parent / "flake8-device"

SETUP = "%matplotlib inline\nimport torch\n!nvidia-smi\n"
MOVE = 'x = torch.zeros(3)\ny = x.to("cuda")\n'
LATER = "z = y.cuda()\nz?\nprint('\u00e9t\u00e9')\n"


def run(args, cwd):
    p = subprocess.run([str(COMMAND), "--isolated", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def code_cell(source, as_list=True, outputs=(), count=None, **meta):
    return {"cell_type": "code", "execution_count": count, "id": f"c{abs(hash(source)) % 10**8}",
            "metadata": dict(meta), "outputs": list(outputs),
            "source": source.splitlines(keepends=True) if as_list else source}


def markdown(text):
    return {"cell_type": "markdown", "id": f"m{abs(hash(text)) % 10**8}", "metadata": {},
            "source": text.splitlines(keepends=True)}


OUTPUT = {"name": "stdout", "output_type": "stream", "text": ["tensor([0., 0., 0.])\n"]}
IMAGE = {"data": {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure>"]}, "metadata": {},
         "output_type": "display_data"}


def notebook(cells, **meta):
    metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python", "version": "3.11.0"}}
    metadata.update(meta)
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def dump(nb, indent=1, ensure_ascii=False, newline=True, sort_keys=True):
    return json.dumps(nb, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys) + ("\n" if newline else "")


def demo(as_list=True):
    return notebook([
        markdown("# A model demo \u2014 on the GPU\n"),
        code_cell(SETUP, as_list, count=1),
        code_cell(MOVE, as_list, outputs=[OUTPUT], count=2, tags=["keep"]),
        code_cell("%%bash\necho $(python -c 'import torch; torch.zeros(1).cuda()')\n", as_list, count=3),
        markdown("More text"),
        code_cell(LATER, as_list, outputs=[IMAGE], count=4),
    ])


def source_spans(text):
    """(start, end) of each cell's source value in the JSON text."""
    from flake8_device.notebooks import _source_spans

    return _source_spans(text)


def outside_sources(text, changed):
    spans = source_spans(text)
    out, last = [], 0
    for index in sorted(changed):
        start, end = spans[index]
        out.append(text[last:start])
        last = end
    return "".join(out) + text[last:]


def test_report_numbers_cells_counting_every_cell(tmp_path):
    (tmp_path / "demo.ipynb").write_text(dump(demo()), encoding="utf-8")
    code, out, err = run(["--no-explain", "demo.ipynb"], tmp_path)
    assert code == 1, err
    lines = [line for line in out.splitlines() if " DEV" in line]
    # cell 3 is the second code cell (a markdown cell comes first); cell 4's %%bash is not Python
    assert lines[0].startswith("demo.ipynb:cell 3:2:10: DEV001 "), out
    assert lines[1].startswith("demo.ipynb:cell 6:1:5: DEV002 "), out
    assert len(lines) == 2


@pytest.mark.parametrize("fmt", ["json", "json-lines"])
def test_json_has_a_cell_field_and_cell_lines(tmp_path, fmt):
    (tmp_path / "demo.ipynb").write_text(dump(demo()), encoding="utf-8")
    code, out, err = run(["--output-format", fmt, "demo.ipynb"], tmp_path)
    records = json.loads(out) if fmt == "json" else [json.loads(line) for line in out.splitlines()]
    assert [(r["cell"], r["code"], r["location"], r["noqa_row"]) for r in records] == [
        (3, "DEV001", {"column": 10, "row": 2}, 2),
        (6, "DEV002", {"column": 5, "row": 1}, 1),
    ]
    assert all(r["filename"] == "demo.ipynb" for r in records)


def test_other_formats_name_the_cell(tmp_path):
    (tmp_path / "demo.ipynb").write_text(dump(demo()), encoding="utf-8")
    _, out, _ = run(["--output-format", "pylint", "demo.ipynb"], tmp_path)
    assert out.splitlines()[0].startswith("demo.ipynb:cell 3:2: [DEV001]")
    _, out, _ = run(["--output-format", "github", "demo.ipynb"], tmp_path)
    assert "file=demo.ipynb,line=2," in out and "::demo.ipynb:cell 3:2:10: DEV001" in out
    _, out, _ = run(["--output-format", "sarif", "demo.ipynb"], tmp_path)
    results = json.loads(out)["runs"][0]["results"]
    assert [(r["properties"]["cell"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
            for r in results] == [(3, 2), (6, 1)]
    _, out, _ = run(["--output-format", "gitlab", "demo.ipynb"], tmp_path)
    assert [r["description"].endswith(f"(cell {n})") for r, n in zip(json.loads(out), (3, 6))] == [True, True]


def test_fix_keeps_everything_but_the_changed_sources(tmp_path):
    nb = demo()
    before = dump(nb)
    path = tmp_path / "demo.ipynb"
    path.write_text(before, encoding="utf-8")
    code, out, err = run(["--fix", "--unsafe-fixes", "demo.ipynb"], tmp_path)
    assert code == 0, out + err
    after = path.read_text(encoding="utf-8")
    nbformat.validate(nbformat.reads(after, as_version=nbformat.NO_CONVERT))
    new = json.loads(after)
    sources = ["".join(c["source"]) for c in new["cells"]]
    assert 'x.to("cuda")' not in sources[2] and "y.cuda()" not in sources[5]
    # the IPython lines are kept as they were, the %%bash cell is untouched
    assert sources[1].startswith("%matplotlib inline\nimport torch\n") and "!nvidia-smi\n" in sources[1]
    assert "z?\n" in sources[5] and sources[3] == "".join(nb["cells"][3]["source"])
    for old, cell in zip(nb["cells"], new["cells"]):
        assert {k: v for k, v in old.items() if k != "source"} == {k: v for k, v in cell.items() if k != "source"}
    changed = [i for i, (a, b) in enumerate(zip(nb["cells"], new["cells"])) if a["source"] != b["source"]]
    assert outside_sources(before, changed) == outside_sources(after, changed)
    # checked again: nothing left, nothing more to write
    code, out, err = run(["demo.ipynb"], tmp_path)
    assert code == 0, out + err


layouts = st.fixed_dictionaries({
    "indent": st.sampled_from([1, 2, 4]),
    "as_list": st.booleans(),
    "newline": st.booleans(),
    "ensure_ascii": st.booleans(),
    "sort_keys": st.booleans(),
    "word": st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=6),
    "final_newline": st.booleans(),
})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=layouts)
def test_property_only_changed_source_lines_change(tmp_path, layout):
    word = layout["word"]
    # the moved line carries the word: its new JSON text must escape it as the file does
    move = f"s = {word!r}\n" + MOVE.replace('"cuda")', f'"cuda")  # {word}') + ("" if layout["final_newline"] else "# end")
    nb = notebook([
        markdown(f"# {word}"),
        code_cell("import torch\n", layout["as_list"], count=1),
        code_cell(move, layout["as_list"], outputs=[OUTPUT], count=2),
        code_cell(f"print({word!r})\n", layout["as_list"], outputs=[IMAGE], count=3),
    ], title=word)
    before = dump(nb, layout["indent"], layout["ensure_ascii"], layout["newline"], layout["sort_keys"])
    path = tmp_path / "nb.ipynb"
    path.write_bytes(before.encode("utf-8"))
    code, out, err = run(["--fix", "--unsafe-fixes", "nb.ipynb"], tmp_path)
    assert code == 0, out + err
    after = path.read_bytes().decode("utf-8")
    nbformat.validate(nbformat.reads(after, as_version=nbformat.NO_CONVERT))
    assert after.endswith("\n") == layout["newline"]
    new = json.loads(after)
    assert 'x.to("cuda")' not in "".join(new["cells"][2]["source"])
    assert isinstance(new["cells"][2]["source"], list) == layout["as_list"]
    assert outside_sources(before, [1, 2]) == outside_sources(after, [1, 2])
    assert after.isascii() == before.isascii()
    moved = [line for line in _lines("".join(new["cells"][2]["source"])) if line.startswith("y = ")]
    assert len(moved) == 1 and moved[0].startswith("y = x.to(DEVICE)  # ")
    if layout["as_list"]:
        assert json.dumps(moved[0], ensure_ascii=layout["ensure_ascii"]) in after
        # within a list, the lines before and after the change keep their bytes
        old_lines = nb["cells"][2]["source"]
        assert new["cells"][2]["source"][:1] == old_lines[:1]
        assert json.dumps(old_lines[0], ensure_ascii=layout["ensure_ascii"]) in after
        if not layout["final_newline"]:
            assert new["cells"][2]["source"][-1] == old_lines[-1] == "# end"
            assert after.count(json.dumps("# end")) == before.count(json.dumps("# end"))
    assert "".join(new["cells"][2]["source"]).endswith("\n") == layout["final_newline"]


def test_diff_shows_cell_sources_and_changes_nothing(tmp_path):
    path = tmp_path / "demo.ipynb"
    text = dump(demo(as_list=False))
    path.write_text(text, encoding="utf-8")
    code, out, err = run(["--diff", "--unsafe-fixes", "demo.ipynb"], tmp_path)
    assert code == 1, err
    assert path.read_text(encoding="utf-8") == text
    assert "--- a/demo.ipynb:cell 3\n+++ b/demo.ipynb:cell 3\n" in out
    assert '-y = x.to("cuda")\n' in out and "--- a/demo.ipynb:cell 6\n" in out
    assert '"outputs"' not in out  # only the sources


def test_add_noqa_writes_into_the_cells(tmp_path):
    path = tmp_path / "demo.ipynb"
    path.write_text(dump(demo()), encoding="utf-8")
    code, out, err = run(["--add-noqa", "demo.ipynb"], tmp_path)
    assert code == 0, out + err
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert cells[2]["source"][1] == 'y = x.to("cuda")  # noqa: DEV001\n'
    assert cells[5]["source"][0] == "z = y.cuda()  # noqa: DEV002\n"
    assert run(["demo.ipynb"], tmp_path)[0] == 0


@pytest.mark.parametrize("text, why", [
    ("{not json", "invalid JSON"),
    ('{"cells": 3}', "no list of cells"),
    ('{"cells": [], "nbformat": 3}', "nbformat 3"),
    ('{"cells": [{"cell_type": "code", "source": 5}], "nbformat": 4}', "source of cell 1"),
    ('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "bogus": 1}', "nbformat"),
])
def test_not_a_notebook_is_an_error_and_nothing_is_written(tmp_path, text, why):
    path = tmp_path / "broken.ipynb"
    path.write_text(text)
    (tmp_path / "ok.py").write_text('import torch\nt = torch.zeros(1).to("cuda")\n')
    code, out, err = run(["--fix", "--unsafe-fixes", "broken.ipynb", "ok.py"], tmp_path)
    assert code == 2 and "broken.ipynb:1:1: E902 " in err and why in err, err
    assert path.read_text() == text
    assert 'to("cuda")' not in (tmp_path / "ok.py").read_text()  # the other files still go on


def test_syntax_error_names_the_cell(tmp_path):
    nb = notebook([markdown("x"), code_cell("import torch\n"), code_cell("def f(:\n    pass\n")])
    (tmp_path / "s.ipynb").write_text(dump(nb))
    code, _, err = run(["s.ipynb"], tmp_path)
    assert code == 2 and "s.ipynb:cell 3:1:" in err and "E999" in err
    code, out, _ = run(["--output-format", "json", "s.ipynb"], tmp_path)
    (record,) = json.loads(out)
    assert code == 2 and (record["code"], record["cell"], record["location"]["row"]) == ("DEV000", 3, 1)
    assert record["message"].startswith("E999 SyntaxError: ")


def test_other_languages_are_not_checked(tmp_path):
    nb = notebook([code_cell('x = t.to("cuda")\n')], language_info={"name": "R"})
    (tmp_path / "r.ipynb").write_text(dump(nb))
    assert run(["r.ipynb"], tmp_path)[:2] == (0, "")


def test_names_of_earlier_cells_are_in_scope(tmp_path):
    # the device bound in the first cell is the one the fix in the second uses
    nb = notebook([code_cell("import torch\ndevice = torch.device('cpu')\n"), code_cell("t = torch.zeros(2).cuda()\n")])
    path = tmp_path / "n.ipynb"
    path.write_text(dump(nb))
    code, out, err = run(["--fix", "n.ipynb"], tmp_path)
    assert code == 0, out + err
    assert json.loads(path.read_text())["cells"][1]["source"] == ["t = torch.zeros(2, device=device)\n"]


def test_a_folder_yields_its_notebooks_but_not_checkpoints(tmp_path):
    (tmp_path / "pkg" / ".ipynb_checkpoints").mkdir(parents=True)
    (tmp_path / "pkg" / "demo.ipynb").write_text(dump(demo()))
    (tmp_path / "pkg" / ".ipynb_checkpoints" / "demo-checkpoint.ipynb").write_text(dump(demo()))
    code, out, _ = run(["--no-explain", "."], tmp_path)
    assert code == 1
    files = {line.split(":", 1)[0] for line in out.splitlines() if " DEV" in line}
    assert files == {os.path.join("pkg", "demo.ipynb")}


def test_lines_are_python_lines(tmp_path):
    # a form feed and a U+2028 end no line for Python: the report's line and the fix stay right
    cell = "import torch\ndevice = torch.device('cpu')\n# a\u2028comment\x0c\ny = torch.ones(2).cuda()\n"
    nb = notebook([code_cell(cell), code_cell("w = torch.ones(1).cuda()\n")])
    path = tmp_path / "l.ipynb"
    path.write_text(dump(nb), encoding="utf-8")
    code, out, err = run(["--no-explain", "l.ipynb"], tmp_path)
    assert [line.split(" DEV")[0] for line in out.splitlines() if " DEV" in line] == [
        "l.ipynb:cell 1:4:5:", "l.ipynb:cell 1:4:5:", "l.ipynb:cell 2:1:5:", "l.ipynb:cell 2:1:5:"], out + err
    code, out, err = run(["--fix", "l.ipynb"], tmp_path)
    assert code == 0, out + err
    sources = ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    assert sources == [cell.replace("torch.ones(2).cuda()", "torch.ones(2, device=device)"),
                       "w = torch.ones(1, device=device)\n"]


def test_python_cell_magics_and_indented_escapes(tmp_path):
    timed = "%%time\ny = torch.ones(2).cuda()\n"
    loop = "for i in range(2):\n    !echo $i\n    files = !ls\n    z = torch.ones(i).cuda()\n"
    written = "%%writefile helper.py\nw = torch.ones(1).cuda()\n"
    nb = notebook([code_cell("import torch\ndevice = torch.device('cpu')\n"), code_cell(timed), code_cell(loop),
                   code_cell(""), code_cell(written)])
    path = tmp_path / "m.ipynb"
    path.write_text(dump(nb), encoding="utf-8")
    code, out, err = run(["--no-explain", "--select", "DEV002", "m.ipynb"], tmp_path)
    assert [line.split(" DEV")[0] for line in out.splitlines() if " DEV" in line] == [
        "m.ipynb:cell 2:2:5:", "m.ipynb:cell 3:4:9:"], out + err
    code, out, err = run(["--fix", "m.ipynb"], tmp_path)
    assert code == 0, out + err
    sources = ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    assert sources[1] == timed.replace("torch.ones(2).cuda()", "torch.ones(2, device=device)")
    assert sources[2] == loop.replace("torch.ones(i).cuda()", "torch.ones(i, device=device)")
    assert sources[3:] == ["", written]


def test_standard_input_with_a_notebook_name(tmp_path):
    text = dump(demo())
    p = subprocess.run([str(COMMAND), "--isolated", "--no-explain", "--stdin-filename", "nb/demo.ipynb", "-"],
                       input=text, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 1 and p.stdout.startswith("nb/demo.ipynb:cell 3:2:10: DEV001 "), p.stdout + p.stderr
    p = subprocess.run([str(COMMAND), "--isolated", "--fix", "--unsafe-fixes", "--stdin-filename", "demo.ipynb", "-"],
                       input=text, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    new = json.loads(p.stdout)
    assert 'x.to("cuda")' not in "".join(new["cells"][2]["source"])
    assert outside_sources(text, [1, 2, 5]) == outside_sources(p.stdout, [1, 2, 5])
    # not a notebook: an error, and the input handed back as it was
    p = subprocess.run([str(COMMAND), "--isolated", "--fix", "--stdin-filename", "demo.ipynb", "-"],
                       input="{oops", capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and p.stdout == "{oops" and "E902" in p.stderr


def test_cells_without_ids_are_checked_quietly(tmp_path):
    # nbformat 4.5 wants cell ids, but only warns (many notebooks lack them): no warning is printed
    nb = notebook([{k: v for k, v in code_cell("import torch\nt = torch.ones(1).cuda()\n").items() if k != "id"}])
    (tmp_path / "old.ipynb").write_text(dump(nb))
    code, out, err = run(["old.ipynb"], tmp_path)
    assert code == 1 and err == "" and "old.ipynb:cell 1:2:" in out, err

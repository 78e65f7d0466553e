"""Writes the generated parts of the docs; ``--check`` only compares.

    python scripts/make_docs.py            # rewrite them
    python scripts/make_docs.py --check    # exit 1 if any is stale

* ``docs/cli.md``: every command's flags by section, with defaults, what
  each allows and its help, from the settings (``maskmodels.cli``).
* The results table in ``README.md`` and ``docs/results.md``, and the
  throughput tables of ``docs/performance.md``: from the benchmark records
  in ``results/records.jsonl`` (mean and sample standard deviation over
  seeds, and n). A generated block sits between ``<!-- generated: NAME
  -->`` and ``<!-- end: NAME -->`` lines.

``tests/test_docs.py`` fails when a generated part is stale.
"""

import collections
import json
import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = os.path.join(ROOT, "results", "records.jsonl")
COMMANDS = ("train", "evaluate", "predict", "export")

# The accuracy benchmarks the README's table shows, in order: what each
# is, how its metric reads, and published figures on the same test split.
ACCURACY = {
    "default": ("Embedded synthetic reviews, the README's first command",
                "test accuracy", ""),
    "imdb_fast": ("IMDb, `configs/imdb_fast.flags`", "test accuracy",
                  "NBSVM-bi 91.22; seq2-bown-CNN 92.33"),
    "imdb": ("IMDb, `configs/imdb.flags` (with a naive Bayes member)",
             "test accuracy", "NBSVM-bi 91.22; seq2-bown-CNN 92.33"),
    "ud_ewt": ("UD English-EWT UPOS, `configs/ud_ewt.flags`",
               "test token accuracy", "UDPipe 1.2 94.4; bilty 94.6"),
    "japanese_vowels": ("JapaneseVowels (unequal lengths), "
                        "`configs/japanese_vowels.flags`", "test accuracy",
                        "FCN 99.3; ResNet 99.2 (interpolated copy)"),
    "japanese_vowels_eq": ("JapaneseVowels, the archive's equal-length "
                           "copy, same flags", "test accuracy",
                           "FCN 99.3; ResNet 99.2 (interpolated copy)"),
    "plaid": ("PLAID (unequal lengths), `configs/plaid.flags`",
              "test accuracy", "MR-Hydra 94.4; HC2 89.3; "
              "H-InceptionTime 47.6 (padded copy)"),
    "cmudict_seq2seq": ("CMUdict G2P, attention decoder, "
                        "`configs/cmudict_seq2seq.flags`",
                        "test word error (lower is better)",
                        "bi-LSTM 23.55; attention ensemble 20.24; "
                        "Transformer 20.2"),
    "cmudict_seq2seq_phones": ("CMUdict G2P, attention decoder, same runs",
                               "test phone error (lower is better)",
                               "bi-LSTM 5.45; attention ensemble 4.69"),
    "cmudict_ctc": ("CMUdict G2P, CTC, `configs/cmudict_ctc.flags`",
                    "test word error (lower is better)",
                    "CTC BLSTM 25.8"),
    "cmudict_ctc_phones": ("CMUdict G2P, CTC, same runs",
                           "test phone error (lower is better)", ""),
}


# Published figures on the suite's problems (test accuracy %, the same
# official split): FCN and ResNet, Fawaz et al. 2019 ("Deep learning for
# time series classification: a review", mean of 10 runs; JapaneseVowels
# from their MTS archive copy, every series interpolated to the longest).
# A problem missing here has no figure looked up yet.
SUITE_SOURCE = ("FCN and ResNet, Fawaz et al. 2019, mean of 10 runs "
                "(JapaneseVowels: their interpolated copy)")
SUITE_PUBLISHED = {
    "ArrowHead": {"FCN": 84.3, "ResNet": 84.5},
    "GunPoint": {"FCN": 100.0, "ResNet": 99.1},
    "ItalyPowerDemand": {"FCN": 96.1, "ResNet": 96.3},
    "OSULeaf": {"FCN": 97.7, "ResNet": 97.9},
    "JapaneseVowels": {"FCN": 99.3, "ResNet": 99.2},
}


def read_records(path=RECORDS):
  """Every record of ``path``, in order (none if it does not exist)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _version_key(version):
  return tuple(int(part) for part in re.findall(r"\d+", version))


def _spread(values, scale):
  mean = statistics.mean(values) * scale
  if len(values) < 2:
    return f"{mean:.2f}"
  return f"{mean:.2f} ± {statistics.stdev(values) * scale:.2f}"


def _cpu(record):
  extensions = ", ".join(record.get("extensions", [])) or "no AVX2"
  return f"{record['cpu']} ({extensions})"


def accuracy_rows(records, latest_only):
  """Table rows of the accuracy benchmarks: one per benchmark, version,
  settings (the command and its flagfiles' digest) and CPU (wall times
  differ between CPUs), or, if
  ``latest_only``, the newest version's most recently run settings only.
  A row names the commit of its newest run."""
  groups = collections.defaultdict(list)
  for order, record in enumerate(records):
    if record["benchmark"] in ACCURACY and record.get("split") == "test":
      command = re.sub(r" '?--seed=\S+", "", record["command"])
      key = (record["benchmark"], record["version"], command,
             record.get("settings", ""), _cpu(record))
      groups[key].append((order, record))
  rows = []
  for name, (what, metric, published) in ACCURACY.items():
    versions = sorted({key[1] for key in groups if key[0] == name},
                      key=_version_key, reverse=True)
    for version in versions[:1] if latest_only else versions:
      keys = sorted((k for k in groups if k[:2] == (name, version)),
                    key=lambda k: groups[k][-1][0])
      for key in keys[-1:] if latest_only else keys:
        group = [record for _, record in groups[key]]
        values = [r["value"] for r in group]
        walls = [r["wall_seconds"] for r in group if r.get("wall_seconds")]
        commit = group[-1].get("commit", "").rstrip("+")
        rows.append([
            what, metric, _spread(values, 100), str(len(values)),
            published, f"{statistics.mean(walls):.0f} s" if walls else "",
            f"{version} ({commit})" if commit else version,
            _cpu(group[-1]), f"`{key[2]}`"])
  return rows


def markdown_table(header, rows):
  lines = ["| " + " | ".join(header) + " |",
           "| " + " | ".join("---" for _ in header) + " |"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


ACCURACY_HEADER = ["benchmark", "metric", "% (mean ± sd over seeds)", "n",
                   "published, same test split (%)", "wall time per run",
                   "version", "CPU (vector extensions)",
                   "command (+ `--seed=S`)"]


def results_table(records, latest_only=True):
  rows = accuracy_rows(records, latest_only)
  if not rows:
    return "No benchmark has been recorded yet."
  return markdown_table(ACCURACY_HEADER, rows)


def throughput_table(records, benchmark):
  """The newest run of a throughput benchmark: one row per measured
  configuration (its median over rounds)."""
  runs = [r for r in records if r["benchmark"] == benchmark]
  if not runs:
    return f"No `{benchmark}` run has been recorded yet."
  newest = max(enumerate(runs), key=lambda pair: (
      pair[1]["date"], _version_key(pair[1]["version"]), pair[0]))[1]
  rows = [r for r in runs if r.get("run") == newest.get("run")]
  body = markdown_table(
      ["configuration", "metric", "median", "rounds", "ratio"],
      [[r["config"], r["metric"], f"{r['value']:.4g}",
        ", ".join(f"{v:.4g}" for v in r.get("rounds", [])),
        f"{r['ratio']:.2f}x" if r.get("ratio") is not None else ""]
       for r in rows])
  return (f"{body}\n\n`{newest['command']}`; maskmodels {newest['version']}"
          f" ({newest['commit']}), {newest['date']}, on {_cpu(newest)}.")


def suite_table(records):
  """The development suite (``benchmarks/accuracy.py --benchmark=suite``):
  per problem, the defaults' and the tuned settings' newest version's
  test accuracy (mean ± sd over seeds), the published figures, and the
  mean rank of each column over the problems that have every column."""
  groups = collections.defaultdict(list)
  for record in records:
    name = record["benchmark"]
    if name.startswith("suite_") and record.get("split") == "test":
      tuned = name.endswith("_tuned")
      problem = name[len("suite_"):-len("_tuned") if tuned else None]
      groups[(problem, tuned)].append(record)
  if not groups:
    return "No suite run has been recorded yet."
  problems = sorted({problem for problem, _ in groups})
  methods = ["defaults", "tuned", "FCN", "ResNet"]
  rows, ranks = [], collections.defaultdict(list)
  for problem in problems:
    cells, means = [problem], {}
    for tuned in (False, True):
      group = groups.get((problem, tuned), [])
      if group:
        newest = max(_version_key(r["version"]) for r in group)
        group = [r for r in group if _version_key(r["version"]) == newest]
        values = [r["value"] for r in group]
        means["tuned" if tuned else "defaults"] = statistics.mean(values)
        note = ""
        if tuned and group[-1].get("search_seconds"):
          note = (f" ({group[-1].get('search_trials')} trials, "
                  f"{group[-1]['search_seconds'] / 60:.0f} min)")
        cells.append(f"{_spread(values, 100)} (n={len(values)}){note}")
      else:
        cells.append("")
    published = SUITE_PUBLISHED.get(problem, {})
    for name in ("FCN", "ResNet"):
      if name in published:
        means[name] = published[name] / 100
      cells.append(f"{published[name]:.1f}" if name in published else "")
    cells.append(_cpu(max((r for key, group in groups.items()
                           if key[0] == problem for r in group),
                          key=lambda r: r["date"])))
    rows.append(cells)
    if len(means) == len(methods):
      ordered = sorted(means.values(), reverse=True)
      for method, value in means.items():
        ranks[method].append(ordered.index(value) + 1)
  if ranks:
    rows.append([f"mean rank ({len(ranks['FCN'])} problems with every "
                 f"column)"] + [f"{statistics.mean(ranks[m]):.2f}"
                                for m in methods] + [""])
  return markdown_table(["problem", "defaults, test % (mean ± sd)",
                         "tuned on validation, test %", "FCN %",
                         "ResNet %", "CPU (vector extensions)"], rows)


def comparison_table(records, benchmark):
  """A benchmark measured on two commits back to back: per configuration,
  the median over each commit's runs (each run's value a median of its
  rounds) and their ratio, newest commit over the one before."""
  runs = [r for r in records if r["benchmark"] == benchmark]
  commits = list(dict.fromkeys(r["commit"].rstrip("+") for r in runs))
  if len(commits) < 2:
    return throughput_table(records, benchmark)
  old, new = commits[-2:]
  rows = []
  for config in dict.fromkeys(r["config"] for r in runs):
    values = {c: [r["value"] for r in runs if r["config"] == config and
                  r["commit"].rstrip("+") == c] for c in (old, new)}
    if not all(values.values()):
      continue
    medians = {c: statistics.median(v) for c, v in values.items()}
    rows.append([config, next(r["metric"] for r in runs
                              if r["config"] == config)] +
                [f"{medians[c]:.4g} ({', '.join(f'{v:.4g}' for v in values[c])})"
                 for c in (old, new)] +
                [f"{medians[new] / medians[old]:.2f}x"])
  newest = runs[-1]
  body = markdown_table(["configuration", "metric", f"{old}: median (runs)",
                         f"{new}: median (runs)", f"{new} / {old}"], rows)
  return (f"{body}\n\n`{newest['command']}`, the two commits' runs "
          f"alternating; maskmodels {newest['version']}, {newest['date']}, "
          f"on {_cpu(newest)}.")


def profile_table(records):
  """``benchmarks/step_profile.py``: the newest run of each command, a
  row each: ms per step of training as runs train, of the kernels alone,
  of a call per step, and of the input pipeline alone."""
  runs = collections.OrderedDict()
  for record in records:
    if record["benchmark"] == "step_profile":
      runs.setdefault(record["command"], {}).setdefault(
          record["run"], []).append(record)
  if not runs:
    return "No `step_profile` run has been recorded yet."
  rows = []
  for command, by_run in runs.items():
    newest = by_run[max(by_run)]
    value = {r["config"].split(" (")[0]: r["value"] for r in newest}
    step, compute = value["step"], value["compute"]
    rows.append([f"`{command.replace('python benchmarks/step_profile.py ', '')}`",
                 f"{step:.1f}", f"{compute:.1f}",
                 f"{value['compute, one step per call'] - compute:.1f}",
                 f"{step - compute:.1f}", f"{value['pipeline']:.1f}",
                 f"{newest[0]['version']} ({newest[0]['commit']}), "
                 f"{_cpu(newest[0])}"])
  return markdown_table(
      ["flags", "step, ms", "kernels, ms", "dispatch of a call, ms",
       "pipeline in the loop, ms", "pipeline alone, ms", "version, CPU"],
      rows)


def results_page(records):
  """docs/results.md: every recorded version of every benchmark."""
  return "\n".join([
      "# Results", "",
      "Generated by `python scripts/make_docs.py` from "
      "`results/records.jsonl`; do not edit by hand. Each benchmark run "
      "appends a record (`benchmarks/accuracy.py` for these); a row is the "
      "mean and sample standard deviation over the n seeds one version was "
      "run with under one command and one text of its flagfiles (records "
      "carry its digest, `settings`); the version column names the commit "
      "of the row's newest run. Settings were chosen on validation data; each "
      "run reads its test split once. Compare wall times only on the same "
      "CPU. Published figures, for reference: IMDb, Wang & Manning 2012 and "
      "Johnson & Zhang 2015 (labelled reviews only); EWT, UDPipe 1.2 and "
      "Plank et al.'s bilty (gold tokenization); JapaneseVowels, Fawaz et "
      "al. 2019 (every series interpolated to the longest); PLAID, the "
      "bake-off redux (Middlehurst et al. 2024; MR-Hydra on the official "
      "split, the equal-length copy).", "",
      results_table(records, latest_only=False), "",
      "Reproduce a row: `python benchmarks/accuracy.py --benchmark=NAME "
      "--data_path=DATA --seeds=0,1,2` (the data as `docs/data-formats.md` "
      "says); it appends its records, then `python scripts/make_docs.py` "
      "rewrites this page and the README's table.", "",
      "## The development suite", "",
      "UEA/UCR problems nobody tuned a flagfile for, fetched by "
      "`python benchmarks/fetch_suite.py --data_dir=suite`: each with the "
      "defaults (no flagfile, no search: `python benchmarks/accuracy.py "
      "--benchmark=suite --data_path=suite`) and with settings searched on "
      "validation data by `maskmodels-tune` (the same with `--tuned`). "
      "Published figures: " + SUITE_SOURCE + ".", "",
      suite_table(records), ""])


def cli_page():
  """docs/cli.md: every command's flags, from its settings."""
  sys.path.insert(0, ROOT)
  # pylint: disable=import-outside-toplevel
  import importlib
  from maskmodels.cli import sections
  parts = ["# Command-line reference", "",
           "Generated by `python scripts/make_docs.py` from the settings "
           "classes the flags are made from; do not edit by hand. "
           "`--helpshort` on a command prints the same, with the names "
           "research modules loaded by `--import` register.", ""]
  for name in COMMANDS:
    command = importlib.import_module(f"maskmodels.commands.{name}").COMMAND
    parts.append(sections.markdown(command))
  return "\n".join(parts)


def replace_block(text, name, content):
  """``text`` with the block between ``<!-- generated: name -->`` and
  ``<!-- end: name -->`` replaced by ``content``."""
  pattern = re.compile(rf"(<!-- generated: {re.escape(name)} -->\n)(.*?)"
                       rf"(<!-- end: {re.escape(name)} -->)", re.S)
  if not pattern.search(text):
    raise ValueError(f"no generated block {name!r}")
  return pattern.sub(lambda m: m.group(1) + content.rstrip("\n") + "\n" +
                     m.group(3), text)


THROUGHPUT_BLOCKS = ("training_throughput", "gru_kernel",
                     "tagging_throughput", "input_pipeline", "dropout",
                     "conv_gradient")


def generated_files(records=None):
  """``{path: content}`` of every file with a generated part."""
  records = read_records() if records is None else records

  def current(path):
    with open(os.path.join(ROOT, path)) as f:
      return f.read()

  readme = replace_block(current("README.md"), "results-table",
                         results_table(records))
  performance = current("docs/performance.md")
  for name in THROUGHPUT_BLOCKS:
    performance = replace_block(performance, name,
                                throughput_table(records, name))
  performance = replace_block(performance, "g2p_throughput",
                              comparison_table(records, "g2p_throughput"))
  performance = replace_block(performance, "step_profile",
                              profile_table(records))
  return {"README.md": readme, "docs/results.md": results_page(records),
          "docs/cli.md": cli_page(), "docs/performance.md": performance}


def stale(files):
  """The paths whose file differs from ``files``."""
  found = []
  for path, content in files.items():
    full = os.path.join(ROOT, path)
    if not os.path.exists(full) or open(full).read() != content:
      found.append(path)
  return found


def main(argv):
  files = generated_files()
  if "--check" in argv:
    outdated = stale(files)
    if outdated:
      print(f"stale: {', '.join(outdated)}; run python "
            f"scripts/make_docs.py", file=sys.stderr)
      return 1
    return 0
  for path, content in files.items():
    with open(os.path.join(ROOT, path), "w") as f:
      f.write(content)
  print(f"wrote {', '.join(files)}")
  return 0


if __name__ == "__main__":
  from maskmodels import cli  # pylint: disable=import-outside-toplevel
  cli.quiet_start()
  sys.exit(main(sys.argv[1:]))

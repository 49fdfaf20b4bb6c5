#!/usr/bin/env python
"""Mutation testing of the exported library with mutmut, the fast unit tests as the runner (slow: not in CI).

    python tools/mutation.py            # run mutmut over SCOPE, then check the survivors against tools/equivalent_mutants.txt
    python tools/mutation.py --check    # only check the results of the last run (mutants/)

Every mutant in SCOPE must be killed (a test fails) or time out, unless it is listed in tools/equivalent_mutants.txt as
equivalent: it cannot change behaviour. That file lists one mutant per line as `function | mutated line | reason`
(the function and the mutated source line, not mutmut's numbers, so that edits elsewhere do not shuffle it).
A surviving mutant of a function's docstring (mutmut mutates one-line docstrings like any string) counts as equivalent
without being listed: it changes the help text only. The script exits 1 if a mutant survives that is not listed, or if a listed one no longer survives (or exists).
Run it from the repository root with the project's venv; it writes only `mutants/` (git-ignored)."""
import argparse, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT/'tools'/'equivalent_mutants.txt'

# The functions mutated: the training maths and the safety checks (mutmut's names: module.x_function__mutmut_N).
# Out of scope, and why:
# - net.plot_history: draws a matplotlib figure (looked at, not computed with);
# - train.default_device, train.peak_rss_mb: depend on the machine (a GPU, /proc), not on the library's logic;
# - the commands mnist_train and mnist_predict, and net's flush_denormal/num_threads: decorated, which mutmut skips;
# - predict's image preparation (to_gray ... prepare_digit, predict, draw_digit): pictures, checked against drawn and
#   real digits by tests/test_predict.py on the real sample, too slow for a mutation run;
# - data's finding, downloading, stand-in, caching and batching (find_data, make_standin, load_stacks, Batches ...):
#   covered by tests/test_data.py on synthetic folders, not part of this audit (maths and safety checks only);
# - the exercise checkers (mnist_basics.exercises, the ten-digit lesson's check_softmax and check_cross_entropy included):
#   feedback text for learners, checked by tests/test_exercises.py, not training maths.
SCOPE = ['mnist_basics.linear.*', 'mnist_basics.fast.*', 'mnist_basics.cnn.*',
         *(f'mnist_basics.net.x_{f}__mutmut_*' for f in 'simple_net linear_params net_params check_finite epoch_range fit'.split()),
         *(f'mnist_basics.train.x_{f}__mutmut_*' for f in 'check_settings check_writable save_model load_model settings train'.split()),
         *(f'mnist_basics.predict.x_{f}__mutmut_*' for f in '_check_size _too_big open_image'.split()),
         *(f'mnist_basics.data.x_{f}__mutmut_*' for f in '_check_members _move_into_place extract_tgz read_digit'.split()),
         *(f'mnist_basics.digits.x_{f}__mutmut_*' for f in ('linear_k_params net_k_params check_scores softmax log_softmax cross_entropy '
                                                            'accuracy softmax_step fast_fit_k exact_accuracy_k cnn_k_model _state '
                                                            'cnn_k_params _blank_cnn_k cnn_k_forward fit_cnn_k confusion_matrix most_confused').split())]

MUTMUT = str(Path(sys.executable).parent/'mutmut')


def function_of(name:str) -> str:
    "'mnist_basics.fast.x_mlp_step__mutmut_12' -> 'mnist_basics.fast.mlp_step'"
    mod, _, rest = name.rpartition('.')
    return f"{mod}.{rest.removeprefix('x_').rsplit('__mutmut_', 1)[0]}"


def mutated_line(name:str) -> str:
    "The changed source line(s) of mutant `name`, stripped, as `mutmut show` prints them"
    diff = subprocess.run([MUTMUT, 'show', name], cwd=ROOT, capture_output=True, text=True).stdout
    return ' / '.join(l[1:].strip() for l in diff.splitlines() if l.startswith('+') and not l.startswith('+++'))


def is_docstring(name:str, line:str) -> bool:
    "Is the mutated line the function's docstring (a one-line string, its first statement)? Help text, not behaviour"
    import ast
    if not (line.startswith('"') and line.endswith('"')): return False
    mod = ROOT/(name.rpartition('.')[0].replace('.', '/') + '.py')
    fn = function_of(name).rpartition('.')[2]
    for node in ast.walk(ast.parse(mod.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name == fn:
            doc = ast.get_docstring(node, clean=False)
            return doc is not None and line.strip('"').upper() in {('XX' + doc + 'XX').upper(), doc.upper()}
    return False


def results() -> dict:
    "{mutant name: status} from the last run, for the mutants in SCOPE"
    sys.path.insert(0, str(ROOT))
    from fnmatch import fnmatch
    from mutmut.stats import status_by_exit_code  # noqa: imported late (mutmut reads its config on import)
    res = {}
    for meta in (ROOT/'mutants'/'mnist_basics').glob('*.py.meta'):
        for name, code in json.loads(meta.read_text())['exit_code_by_key'].items():
            if any(fnmatch(name, p) for p in SCOPE): res[name] = status_by_exit_code[code]
    return res


def read_equivalents() -> dict:
    "{(function, mutated line): reason} from EQUIVALENT"
    eq = {}
    for l in EQUIVALENT.read_text().splitlines():
        if not l.strip() or l.startswith('#'): continue
        fn, line, reason = (s.strip() for s in l.split(' | ', 2))
        eq[fn, line] = reason
    return eq


def check(seconds=None) -> int:
    res = results()
    if not res: sys.exit('no mutation results under mutants/: run without --check first')
    counts = {}
    for s in res.values(): counts[s] = counts.get(s, 0) + 1
    survivors = {n for n, s in res.items() if s not in ('killed', 'timeout')}
    eq, found, unexplained, docs = read_equivalents(), set(), [], 0
    for n in sorted(survivors):
        key = function_of(n), mutated_line(n)
        if key in eq: found.add(key)
        elif is_docstring(n, key[1]): docs += 1
        else: unexplained.append((n, res[n], *key))
    stale = sorted(set(eq) - found)
    print(f"mutants: {len(res)}; " + ', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))
          + f"; equivalent: {len(found)} listed, {docs} docstrings" + (f"; run time {seconds/60:.1f} min" if seconds else ''))
    for n, s, fn, line in unexplained: print(f'NOT KILLED ({s}): {n}\n    {fn} | {line}')
    for fn, line in stale: print(f'LISTED AS EQUIVALENT BUT NOT A SURVIVOR (remove it): {fn} | {line}')
    if unexplained or stale: return 1
    print(f'every non-equivalent mutant killed: {counts.get("killed", 0)} killed, {counts.get("timeout", 0)} timed out, '
          f'{len(found) + docs} equivalent ({docs} of them docstrings)')
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--check', action='store_true', help='only compare the last run with the list of equivalent mutants')
    ap.add_argument('--max-children', type=int, default=2, help='mutants tested at once (default 2)')
    args = ap.parse_args(argv)
    seconds = None
    if not args.check:
        # An empty FASTAI_HOME of its own: the unit tests need no data, and tests/conftest.py would otherwise call the
        # (mutated) library at import to read a config.ini, which mutmut's forced-failure check turns into a usage error.
        home = tempfile.mkdtemp(prefix='mnist_basics_mutation_')
        env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'} | {'FASTAI_HOME': home}
        shutil.rmtree(ROOT/'mutants', ignore_errors=True)  # a clean run: no stale stats or results
        t0 = time.perf_counter()
        r = subprocess.run([MUTMUT, 'run', '--max-children', str(args.max_children), *SCOPE], cwd=ROOT, env=env)
        seconds = time.perf_counter() - t0
        shutil.rmtree(home, ignore_errors=True)
        if r.returncode: sys.exit(f'mutmut failed (exit {r.returncode})')
    sys.exit(check(seconds))


if __name__ == '__main__': main()

"""Build the documentation site and README.md from the notebooks, offline.

    python tools/build_docs.py                      # execute, process, render with smalldocs, write README.md
    python tools/build_docs.py --renderer quarto    # same, rendered by Quarto (the GitHub docs workflow)
    python tools/build_docs.py --check-readme       # fail if README.md differs from what index.ipynb gives

Notebooks are committed without outputs, so nothing churns in git. This script tests a copy of every
notebook with nbdev's own test runner (`nbdev.test.test_nb`, what `nbdev_test` calls: same skip rules,
flags and working directory), keeping the outputs — so in CI this run is the test suite and every
notebook is executed once. Tutorials, marked `skip_exec`, take the outputs of CI's papermill run in
`_build/papermill/` when it is there. nbdev then processes the executed copies into `_proc/` exactly as
`nbdev_docs` would; `_proc/` is rendered into `_docs/` (one HTML page per notebook) and README.md is
written from `index.ipynb`.
"""
import argparse, base64, multiprocessing, re, shutil, subprocess, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from execnb.nbio import read_nb, write_nb
from nbdev.config import get_config
from nbdev.doclinks import _build_modidx
from nbdev.frontmatter import _fm2dict
from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml
from nbdev.serve import proc_nbs


def execute_one(nb_path:str, root:str)->tuple[str, bool|None]:
    """Test one notebook with nbdev's own executor (`nbdev.test.test_nb`: the skip rules, test flags and working
    directory of `nbdev_test`) and keep the outputs of its cells in the copy. Returns (name, passed), passed=None
    when nbdev does not execute it (`skip_exec`)."""
    from execnb import shell
    from nbdev.test import test_nb
    nb_path, ran = Path(nb_path), []
    run_all = shell.CaptureShell.run_all
    def run_and_keep(self, nb, *args, **kwargs):   # the notebook test_nb executes, outputs and all
        ran.append(nb)
        return run_all(self, nb, *args, **kwargs)
    shell.CaptureShell.run_all = run_and_keep
    passed, _ = test_nb(nb_path, skip_flags=get_config().tst_flags.split(), basepath=root)
    if not ran: return nb_path.name, None
    outputs = {c.get('id'): c.get('outputs', []) for c in ran[0].cells if c.cell_type == 'code'}
    nb = read_nb(nb_path)   # the copy as committed (nbdev's processing of the run dropped its frontmatter cell)
    for c in nb.cells:
        if c.cell_type == 'code' and c.get('id') in outputs: c['outputs'] = outputs[c.get('id')]
    write_nb(nb, nb_path)
    return nb_path.name, passed

def execute_copies(nbs:Path, dest:Path, n_workers:int=2):
    "Copy the notebook folder to `dest` and test each notebook there, each in a fresh process, keeping the outputs."
    if dest.exists(): shutil.rmtree(dest)
    shutil.copytree(nbs, dest, symlinks=False, ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_*.ipynb'))
    todo = sorted(dest.rglob('*.ipynb'))
    # a fresh process per notebook: no state (imports, matplotlib settings) leaks between them
    ctx = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(n_workers, mp_context=ctx, max_tasks_per_child=1) as ex:
        results = list(ex.map(execute_one, map(str, todo), [str(get_config().config_path)] * len(todo)))
    for nb_path, (name, passed) in zip(todo, results):
        # tutorials are jobs (`skip_exec`): CI runs them with papermill first; show those outputs when present
        ran = dest.parent/'papermill'/name
        if passed is None and ran.exists(): shutil.copy(ran, nb_path); print(f'using papermill outputs for {name}')
    failed = [name for name, passed in results if passed is False]
    n_run = sum(passed is not None for _, passed in results)
    print(f'{n_run - len(failed)} passed, {len(failed)} failed: notebooks executed by nbdev\'s test runner '
          f'({len(results) - n_run} skip_exec)')
    if failed: sys.exit('notebooks failed while building the docs: ' + ', '.join(failed))

def process(executed:Path)->Path:
    "nbdev's own processing of the executed notebooks into `_proc/`."
    _build_modidx()
    nbdev_sidebar.__wrapped__(path=executed)
    shutil.copy(executed/'sidebar.yml', get_config().nbs_path/'sidebar.yml')
    return proc_nbs(path=executed, force=True, n_workers=0)

def _output_md(out, assets:Path, stem:str, n:int)->str:
    if out.get('output_type') == 'stream': return '```\n' + ''.join(out['text']).rstrip() + '\n```\n'
    data = out.get('data', {})
    if 'image/png' in data:
        assets.mkdir(exist_ok=True)
        name = f'{stem}_{n}.png'
        (assets/name).write_bytes(base64.b64decode(''.join(data['image/png'])))
        return f'![]({assets.name}/{name})\n'
    if 'text/markdown' in data: return ''.join(data['text/markdown']) + '\n'
    if 'text/plain' in data: return '```\n' + ''.join(data['text/plain']).rstrip() + '\n```\n'
    return ''

def readme_text(index_nb:Path, assets:Path)->str:
    "GitHub Markdown for README.md from the processed, executed index notebook."
    nb = read_nb(index_nb)
    parts, fm = [], {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == 'raw' and cell.source.startswith('---'):
            fm = _fm2dict(cell.source, nb=False)
            continue
        if cell.cell_type == 'markdown':
            if 'AUTOGENERATED' in cell.source: continue
            parts.append(cell.source.strip() + '\n')
        elif cell.cell_type == 'code':
            lines = cell.source.strip().splitlines()
            code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
            if code and not any(re.match(r'#\|\s*echo:\s*false', l) for l in lines): parts.append('```python\n' + code + '\n```\n')
            parts += [_output_md(o, assets, 'index', f'{i}_{j}') for j, o in enumerate(cell.get('outputs', []))]
    head = [f"# {fm.get('title', 'msa')}\n", '<!-- WARNING: THIS FILE WAS AUTOGENERATED FROM nbs/index.ipynb! DO NOT EDIT! -->\n']
    if fm.get('description'): head.append(f"> {fm['description']}\n")
    return '\n'.join(head + [p for p in parts if p])

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--renderer', choices=['smalldocs', 'quarto', 'none'], default='smalldocs')
    ap.add_argument('--check-readme', action='store_true', help='fail if README.md is out of date instead of writing it')
    args = ap.parse_args()
    cfg = get_config()
    root = cfg.config_path
    executed = root/'_build'/'nbs'
    refresh_quarto_yml()  # writes nbs/nbdev.yml (title, output-dir) before the notebooks are copied
    execute_copies(cfg.nbs_path, executed)
    cache = process(executed)
    assets = root/'index_files'
    text = readme_text(cache/'index.ipynb', root/'_build'/'index_files' if args.check_readme else assets)
    if args.check_readme:
        if (root/'README.md').read_text() != text:
            sys.exit('README.md is out of date: run `python tools/build_docs.py` and commit it')
        print('README.md is up to date')
    else:
        (root/'README.md').write_text(text)
        print('wrote README.md')
    out = cfg.doc_path
    if args.renderer == 'smalldocs':
        subprocess.run([str(Path(sys.executable).parent/'smalldocs'), 'render', '--quiet', str(cache)], check=True)
        shutil.rmtree(out, ignore_errors=True); shutil.move(str(cache/out.name), str(out))
    elif args.renderer == 'quarto':
        subprocess.run(['quarto', 'render', '--no-cache'], cwd=cache, check=True)
        shutil.rmtree(out, ignore_errors=True); shutil.move(str(cache/out.name), str(out))
    if args.renderer != 'none':
        pages = sorted(p.name for p in out.rglob('*.html'))
        print(f'{len(pages)} HTML pages in {out.name}/: {", ".join(pages)}')

if __name__ == '__main__': main()

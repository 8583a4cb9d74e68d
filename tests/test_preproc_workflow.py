"""The preprocessing workflow: graph structure, and one full run on a phantom with a rerun."""

import gc
import json
import os
import subprocess
import sys
import threading
from multiprocessing import forkserver, get_context
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from bids.layout import BIDSLayout
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from preproc_phantoms import make_phantom, random_pose

import msxai_bids
from msxai_bids.grid import CNN_GRID
from msxai_bids.interfaces.itk import use_itk_threads
from msxai_bids.preprocessing import workers
from msxai_bids.stages import preprocessing as stage
from msxai_bids.workflows.preprocessing import OUTPUT_FIELDS, init_preproc_wf


def _edges(workflow) -> set[tuple[str, str]]:
    return {(u.name, v.name) for u, v in workflow._graph.edges()}


def test_graph_without_lesions_has_the_core_chain():
    workflow = init_preproc_wf(lesion_fill=False, has_lesion_mask=False, seed=5)
    names = set(workflow.list_node_names())
    assert {"reorient", "brain_mask", "n4", "register", "flair_to_grid", "scale", "qc"} <= names
    assert not {"lesion_to_grid", "fill_lesions"} & names
    edges = _edges(workflow)
    for edge in [("reorient", "first_mask"), ("first_mask", "first_register"),
                 ("first_register", "prior_mask"), ("prior_mask", "n4"), ("n4", "register"),
                 ("first_register", "register"), ("register", "brain_mask"),
                 ("brain_mask", "mask_to_grid"), ("register", "flair_to_grid"),
                 ("flair_to_grid", "scale")]:  # fmt: skip
        assert edge in edges
    for name in ("first_register", "register"):
        register = workflow.get_node(name)
        assert register.inputs.seed == 5  # --seed reaches both registrations
        assert register.n_procs == 1 and register.inputs.num_threads == 1  # reproducible
    assert set(OUTPUT_FIELDS) <= set(workflow.get_node("outputnode").inputs.copyable_trait_names())


def test_graph_with_lesion_fill_adds_lesion_branch():
    workflow = init_preproc_wf(lesion_fill=True, has_lesion_mask=True, seed=7)
    edges = _edges(workflow)
    assert workflow.get_node("fill_lesions").inputs.seed == 7  # --seed reaches the fill
    assert ("register", "lesion_to_grid") in edges
    assert ("lesion_to_grid", "fill_lesions") in edges
    assert ("scale_filled", "outputnode") in edges
    assert "__desc__" in vars(workflow) and "N4" in workflow.__desc__


def test_lesion_fill_without_mask_is_refused():
    with pytest.raises(ValueError, match="lesion mask"):
        init_preproc_wf(lesion_fill=True, has_lesion_mask=False)


def test_itk_thread_count_reaches_the_environment(monkeypatch):
    monkeypatch.delenv("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", raising=False)
    use_itk_threads(3)
    assert os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] == "3"


def test_the_modules_preloaded_for_the_workers_import():
    # The server that forks the workers skips a module it cannot import, without a word.
    # Imported in a child: the preload module freezes the heap of whoever imports it.
    code = "import importlib, sys; [importlib.import_module(name) for name in sys.argv[1:]]"
    subprocess.run([sys.executable, "-c", code, *workers.MODULES], check=True, timeout=120)


LEAN_CHECK = r"""
import json, re, sys
from pathlib import Path
import msxai_bids.preprocessing.lean_antspyx
import ants
called = {
    name for path in Path(sys.argv[1]).rglob("*.py")
    for name in re.findall(r"\bants\.([A-Za-z_]+)\(", path.read_text())
}
print(json.dumps({
    "heavy": [name for name in ("sklearn", "statsmodels", "scipy.stats", "matplotlib")
              if name in sys.modules],
    "called": sorted(called),
    "missing": sorted(name for name in called if not hasattr(ants, name)),
}))
"""


def test_the_servers_antspyx_has_every_function_msxai_calls_without_the_unused_subpackages():
    package = Path(msxai_bids.__file__).parent
    result = subprocess.run(
        [sys.executable, "-c", LEAN_CHECK, str(package)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["heavy"] == []
    assert {"registration", "iMath", "otsu_segmentation"} <= set(found["called"])
    assert found["missing"] == []


WORKER_CHECK = """
import gc, sys
from multiprocessing import get_context
from msxai_bids.preprocessing import workers

def loaded(queue):
    from msxai_bids import templates
    from msxai_bids.preprocessing import spaces
    queue.put((spaces._template_on_grid.cache_info().currsize,
               templates._template_file.cache_info().currsize, "ants" in sys.modules,
               gc.get_freeze_count() > 0, "nilearn.plotting" in sys.modules,
               "statsmodels" in sys.modules))

if __name__ == "__main__":
    workers.start(1)
    context = get_context("forkserver")
    queue = context.Queue()
    worker = context.Process(target=loaded, args=(queue,))
    worker.start()
    print(*queue.get())
    worker.join()
    workers.stop()
"""


def test_a_worker_starts_with_antspyx_and_the_templates_loaded_and_frozen(tmp_path):
    # Loaded in each worker instead, they cost about 4 s before its first step; frozen, a
    # worker's garbage collections do not copy the server's pages.
    script = tmp_path / "check.py"
    script.write_text(WORKER_CHECK)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=120
    )
    last_line = result.stdout.splitlines()[-1]
    on_grid, files, ants_imported, frozen, plotting, statsmodels = last_line.split()
    assert on_grid == "2" and int(files) >= 2 and ants_imported == "True" and frozen == "True"
    # The QC figure's nilearn is loaded; what antspyx imports for subpackages no step calls is not.
    assert plotting == "True" and statsmodels == "False"
    # Stopped by a signal, the server does not collect its frozen heap at exit, where
    # antspyx's bindings would report every image object still alive.
    assert "leaked" not in result.stderr


RELEASE_CHECK = """
import re, sys
from pathlib import Path
import numpy as np
from msxai_bids.preprocessing.preload import release_free_memory

def resident_mb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text())[1]) // 1024

blocks = [np.ones(1_000_000) for _ in range(25)]  # 200 MB, freed but kept by tcmalloc
del blocks
before = resident_mb()
release_free_memory()
print(before - resident_mb(), flush=True)
"""


def test_the_server_hands_back_the_memory_its_loading_freed():
    # Kept by the allocator, it would be copied into every worker that reuses it.
    tcmalloc = Path("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")
    if not tcmalloc.is_file():
        pytest.skip("libtcmalloc-minimal4 is not installed")
    result = subprocess.run(
        [sys.executable, "-c", RELEASE_CHECK],
        env=os.environ | {"LD_PRELOAD": str(tcmalloc)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert int(result.stdout.split()[-1]) > 150
    assert "leaked" not in result.stderr  # the frozen templates are freed at exit (spaces)


def test_a_stopped_server_is_gone_and_starts_again_for_the_next_run():
    for _ in range(2):  # two runs in one process, as in tests and notebooks
        workers.start(1)
        worker = get_context("forkserver").Process(target=sorted, args=([],))
        worker.start()
        worker.join(timeout=120)
        assert worker.exitcode == 0
        server = forkserver._forkserver._forkserver_pid
        workers.stop()
        with pytest.raises(ProcessLookupError):
            os.kill(server, 0)


def test_the_server_runs_for_the_workflow_and_alongside_goes_to_it(tiny_bids, monkeypatch):
    layout = BIDSLayout(tiny_bids)
    images = [
        (flair, None) for flair in layout.get(subject="01", suffix="FLAIR", extension=".nii.gz")
    ]
    plan = stage.PreprocessingPlan(tiny_bids.parent / "out", tiny_bids.parent / "work")
    calls = []

    def execute(workflow, plan, n_images, alongside):
        calls.append("workflow")
        for call in alongside:
            call()
        return []

    monkeypatch.setattr(workers, "start", lambda threads: calls.append("server"))
    monkeypatch.setattr(stage, "init_participant_wf", lambda **kwargs: calls.append("graph"))
    monkeypatch.setattr(stage, "execute", execute)
    monkeypatch.setattr(workers, "stop", lambda: calls.append("stop"))
    monkeypatch.setattr(stage, "warn_flagged", lambda *args: None)
    assert stage.run(images, plan, alongside=[lambda: calls.append("caller")]) == 0
    assert calls == ["server", "graph", "workflow", "caller", "stop"]

    calls.clear()  # complete now: nothing runs, and the caller's work is not done either
    assert stage.run(images, plan, alongside=[lambda: calls.append("caller")]) == 0
    assert calls == []


class QuickWorkflow:
    """Stands in for a Nipype workflow in :func:`stage.execute`."""

    def __init__(self, run=lambda: None):
        self.config = {"execution": {}}
        self._run = run

    def run(self, plugin, plugin_args):
        self._run()


def assert_set(event: threading.Event) -> None:
    assert event.wait(timeout=30)


def test_alongside_runs_while_the_workflow_does_and_its_error_comes_after(tmp_path):
    plan = stage.PreprocessingPlan(tmp_path / "out", tmp_path / "w")
    alongside_ran = threading.Event()
    # The workflow waits for alongside: run before or after it, this would time out.
    workflow = QuickWorkflow(lambda: assert_set(alongside_ran))
    assert stage.execute(workflow, plan, 1, [alongside_ran.set]) == []

    # What each call makes (a library's modules) is frozen before the next starts: MultiProc's
    # collections would otherwise scan half an import of torch at every step.
    freeze_counts, made = [], []

    def make():
        freeze_counts.append(gc.get_freeze_count())
        made.extend([] for _ in range(1000))  # lists, unlike empty dicts, are tracked

    alongside = [make, lambda: freeze_counts.append(gc.get_freeze_count())]
    assert stage.execute(QuickWorkflow(), plan, 1, alongside) == []
    assert freeze_counts[1] >= freeze_counts[0] + 1000

    def broken():
        raise ImportError("no module named zennit")

    switch = sys.getswitchinterval()
    during = []  # a short switch interval while the imports compete with MultiProc's threads
    workflow = QuickWorkflow(lambda: during.append(sys.getswitchinterval()))
    with pytest.raises(ImportError, match="zennit"):
        stage.execute(workflow, plan, 1, [broken])
    assert during == [stage.SWITCH_SECONDS] and sys.getswitchinterval() == switch
    assert gc.get_freeze_count() == 0


def test_the_workflow_runs_with_the_heap_frozen_and_leaves_it_unfrozen(tmp_path):
    # Nipype's MultiProc collects garbage at every poll with a processor free; over an
    # unfrozen heap with torch loaded, that kept one of two cores busy.
    class Recorder:
        def __init__(self):
            self.config = {"execution": {}}

        def run(self, plugin, plugin_args):
            self.frozen = gc.get_freeze_count()
            self.plugin_args = plugin_args
            raise RuntimeError("a node failed")

    plan = stage.PreprocessingPlan(tmp_path / "out", tmp_path / "w", nprocs=2)
    workflow = Recorder()
    assert gc.get_freeze_count() == 0
    crashes = stage.execute(workflow, plan, n_images=3)
    assert crashes == []
    assert workflow.frozen > 0
    assert gc.get_freeze_count() == 0
    assert workflow.plugin_args["mp_context"] == "forkserver"
    assert workflow.plugin_args["n_procs"] == 2
    assert workflow.config["execution"]["poll_sleep_duration"] == stage.POLL_SECONDS

    # One image's steps run mostly one after another: a second worker mostly adds memory.
    workflow = Recorder()
    stage.execute(workflow, plan, n_images=1)
    assert workflow.plugin_args["n_procs"] == 1


def _pack(preproc, brain_mask, xfm, qc, qc_figure, lesion_mask, lesionfilled, metadata):
    """Gather the outputnode's fields in one node that Nipype keeps in the executed graph."""
    return dict(locals())


def _outputs(graph) -> dict:
    node = next(n for n in graph.nodes() if n.name == "collect")
    return node.result.outputs.outputs


@pytest.mark.slow
def test_full_run_on_skull_phantom_then_cached_rerun(tmp_path):
    rng = np.random.default_rng(7)
    phantom = make_phantom(rng, pose=random_pose(rng), voxel_mm=2.0, axcodes="LPS", skull=True,
                           n_lesions=6)  # fmt: skip
    nb.save(phantom.flair, tmp_path / "flair.nii.gz")
    nb.save(phantom.lesion_mask, tmp_path / "lesion.nii.gz")

    def run():
        workflow = init_preproc_wf(lesion_fill=True, has_lesion_mask=True)
        collect = pe.Node(niu.Function(function=_pack, output_names=["outputs"]), name="collect")
        outputnode = workflow.get_node("outputnode")
        workflow.connect([(outputnode, collect, [(f, f) for f in OUTPUT_FIELDS])])
        workflow.base_dir = str(tmp_path / "work")
        workflow.inputs.inputnode.flair = str(tmp_path / "flair.nii.gz")
        workflow.inputs.inputnode.lesion_mask = str(tmp_path / "lesion.nii.gz")
        return workflow.run(plugin="MultiProc", plugin_args={"n_procs": 2})

    outputs = _outputs(run())
    for field in ("preproc", "lesionfilled", "brain_mask", "lesion_mask"):
        image = nb.load(outputs[field])
        assert image.shape == CNN_GRID.shape
        np.testing.assert_allclose(image.affine, CNN_GRID.affine)
    flair = nb.load(outputs["preproc"]).get_fdata()
    assert np.isfinite(flair).all() and flair.min() == 0.0 and flair.max() == pytest.approx(1.0)
    lesion = nb.load(outputs["lesion_mask"]).get_fdata() > 0
    filled = nb.load(outputs["lesionfilled"]).get_fdata()
    assert lesion.any() and filled[lesion].mean() < flair[lesion].mean() - 0.1
    assert "AffineTransform_double_3_3" in Path(outputs["xfm"]).read_text()
    qc = json.loads(Path(outputs["qc"]).read_text())
    assert qc["plausible"], qc["reason"]
    assert outputs["metadata"]["Resolution"] == CNN_GRID.description
    assert os.path.getsize(outputs["qc_figure"]) > 10_000

    stamp = os.path.getmtime(outputs["xfm"])
    assert _outputs(run())["xfm"] == outputs["xfm"]
    assert os.path.getmtime(outputs["xfm"]) == stamp  # the rerun reused the cached registration

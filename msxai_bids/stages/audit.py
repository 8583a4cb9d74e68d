"""Group level with ``--audit``: the explanation audit of every model whose heatmaps are in OUT.

For each model whose file is found (``OUT/models/``, the models shipped with msxai, or a
``--model`` given to the group level) a seeded, class-balanced sample of its participants is
audited for every method present: the trained model's heatmaps (read from OUT) are compared
with those of a cascade of randomised copies, scored against the lesion masks beside three
baselines, and tested by region perturbation. The audit recomputes explanations (one per method
per cascade step) and runs many forward passes, so it is an option of the group level and not
part of every run; its cost grows with ``--audit-size``.

Outputs, per model: the audit table and, per method, the randomisation and perturbation
curves; the per-participant numbers go into the group's participants table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import torch
from torch import nn

from msxai_bids import bids, derivatives
from msxai_bids.audit import faithfulness, localisation, randomisation, verdicts
from msxai_bids.data import SHIPPED_MODELS
from msxai_bids.errors import NoInputError
from msxai_bids.explain.attribution import explain
from msxai_bids.explain.fieldofview import field_of_view_mask
from msxai_bids.model.distributed import SINGLE_PROCESS, select_device
from msxai_bids.model.modelfile import ModelFileError, load_model, read_card

LOGGER = logging.getLogger("msxai.audit")

#: Volumes per explanation pass and per batch of perturbed copies, by device type.
EXPLAIN_BATCH = {"cpu": 1, "cuda": 8}
PERTURB_BATCH = {"cpu": 4, "cuda": 16}


@dataclass(frozen=True)
class AuditPlan:
    """What the audit needs to know of the options.

    ``size`` participants per model are audited (all when fewer); ``models`` are model files
    besides those in ``OUT/models`` and the shipped ones; ``seed`` draws the sample, the
    randomised weights, SmoothGrad's noise and the random perturbation orders.
    """

    output_dir: Path
    size: int = 10
    models: tuple[Path, ...] = ()
    seed: int = 0
    device: str = "auto"
    threads: int = 1


@dataclass(frozen=True)
class Subject:
    """One audited image: its input, where the brain is, its lesions and trained heatmaps."""

    source: str
    target: int
    volume: np.ndarray
    within: np.ndarray
    lesions: np.ndarray | None
    maps: dict[str, np.ndarray]


def model_files(output_dir: Path, extra: Sequence[Path]) -> dict[str, Path]:
    """Model files that can be audited, by model identifier (architecture and SHA-256)."""
    candidates = [p.with_suffix("") for p in derivatives.KINDS["model"].glob(output_dir)]
    found = {}
    for path in [*candidates, *SHIPPED_MODELS.values(), *extra]:
        try:
            found.setdefault(read_card(path).model_id, path)
        except ModelFileError as err:
            LOGGER.warning("not a model file, left out of the audit: %s", err)
    return found


def sample(images: pd.DataFrame, size: int, seed: int) -> list[str]:
    """Sources of up to ``size`` images, half patients and half controls where there are enough."""
    rng = np.random.default_rng(seed)
    by_class = images.drop_duplicates("source").groupby("target")["source"]
    pools = {target: sorted(sources) for target, sources in by_class}
    patients, controls = pools.get(1, []), pools.get(0, [])
    n_patients = min(len(patients), max(size - len(controls), -(-size // 2)))
    n_controls = min(len(controls), size - n_patients)
    chosen = [*rng.permutation(patients)[:n_patients], *rng.permutation(controls)[:n_controls]]
    return sorted(str(source) for source in chosen)


def load_subject(rows: pd.DataFrame, seen: np.ndarray) -> Subject:
    """One image's arrays from the rows (one per method) of the analyses' images table."""
    first = rows.iloc[0]
    volume = np.asanyarray(nb.load(first["image"]).dataobj, np.float32)
    brain = np.asanyarray(nb.load(first["brain_mask"]).dataobj) > 0.5
    lesions = None
    if isinstance(first["lesion_mask"], Path):
        lesions = np.asanyarray(nb.load(first["lesion_mask"]).dataobj) > 0.5
    maps = {
        row["method"]: np.asanyarray(nb.load(row["heatmap"]).dataobj, np.float32)
        for _, row in rows.iterrows()
    }
    return Subject(first["source"], int(first["target"]), volume, brain & seen, lesions, maps)


def randomisation_test(
    model: nn.Module, subjects: Sequence[Subject], methods: Sequence[str], plan: AuditPlan
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Similarity of each trained map to its maps along the cascade, and the last maps.

    Returns the curves (one row per participant, method and step) and the fully randomised
    model's maps, (n, X, Y, Z) per method.
    """
    volumes = np.stack([s.volume for s in subjects])
    batch = EXPLAIN_BATCH[next(model.parameters()).device.type]
    rows, last = [], {}
    layers = randomisation.cascade(model, seed=plan.seed)
    for step, (layer, randomised) in enumerate(layers, start=1):
        started = time.perf_counter()
        torch.manual_seed(plan.seed)  # SmoothGrad's noise is the same at every step
        last = explain(randomised, volumes, methods, batch_size=batch).relevance
        for i, subject in enumerate(subjects):
            for method in methods:
                trained, changed = subject.maps[method], last[method][i]
                rows.append(
                    {
                        "source": subject.source,
                        "step": step,
                        "randomised_down_to": layer,
                        "method": method,
                        "rank_correlation": randomisation.rank_correlation(
                            trained, changed, subject.within
                        ),
                        "ssim": randomisation.structural_similarity_of(trained, changed),
                    }
                )
        LOGGER.info(
            "randomisation step %d/%d (layers down to %s): %.0f s",
            step,
            len(layers),
            layer,
            time.perf_counter() - started,
        )
    return pd.DataFrame(rows), last


def localisation_test(subject: Subject, trained: np.ndarray, randomised: np.ndarray) -> dict:
    """Both accuracies of the trained map and of the randomised and intensity baselines."""
    if subject.lesions is None:
        return {}
    truth, within = subject.lesions & subject.within, subject.within
    intensity = localisation.intensity_map(subject.volume, within)
    scores = {"uniform_map_accuracy": localisation.uniform_map_accuracy(truth, within)}
    for prefix, heatmap in (
        ("relevance", trained),
        ("randomised", randomised),
        ("intensity", intensity),
    ):
        scores[f"{prefix}_mass_accuracy"] = localisation.mass_accuracy(heatmap, truth)
        scores[f"{prefix}_rank_accuracy"] = localisation.rank_accuracy(heatmap, truth, within)
    return scores


def faithfulness_test(
    model: nn.Module, subject: Subject, methods: Sequence[str], rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Perturbation curves of every method and of random draws; AOPC per method.

    Step 0, the unperturbed logit, is computed once and begins every curve.
    """
    regions = faithfulness.cube_regions(subject.within)
    n_regions = int(regions.max()) + 1
    counts = faithfulness.steps_of(n_regions)
    fill = float(subject.volume[subject.within].mean())
    batch = PERTURB_BATCH[next(model.parameters()).device.type]
    unperturbed = faithfulness.logits_of(model, [subject.volume], batch)
    perturbing = {"fill": fill, "batch_size": batch}
    random_curve = np.concatenate(
        [
            unperturbed,
            faithfulness.random_perturbation_logits(
                model, subject.volume, regions, counts[1:], rng, **perturbing
            ),
        ]
    )
    curves, scores = [], {}
    for method in methods:
        ranking = faithfulness.most_relevant_first(subject.maps[method], regions)
        ordered = np.concatenate(
            [
                unperturbed,
                faithfulness.perturbation_logits(
                    model, subject.volume, regions, ranking, counts[1:], **perturbing
                ),
            ]
        )
        scores[method] = {
            "aopc_most_relevant_first": faithfulness.area_over_curve(ordered),
            "aopc_random_order": faithfulness.area_over_curve(random_curve),
        }
        for order, logits in (("most-relevant-first", ordered), ("random", random_curve)):
            curves.append(
                pd.DataFrame(
                    {
                        "source": subject.source,
                        "method": method,
                        "order": order,
                        "step": np.arange(len(counts)),
                        "perturbed_share": np.asarray(counts) / n_regions,
                        "logit": logits,
                        "logit_drop": logits[0] - logits,
                    }
                )
            )
    return pd.concat(curves, ignore_index=True), scores


def audit_model(model_path: Path, images: pd.DataFrame, plan: AuditPlan) -> pd.DataFrame:
    """Audit one model on a sample of ``images`` (its rows of the analyses' images table).

    Writes the model's audit table and curves; returns one row per audited participant and
    method with the numbers of :data:`~msxai_bids.audit.verdicts.PARTICIPANT_COLUMNS`.
    """
    name = images["model"].iloc[0]
    device = select_device(plan.device, SINGLE_PROCESS)
    model, _ = load_model(model_path, device=device)
    methods = sorted(set(images["method"]))
    chosen = sample(images, plan.size, plan.seed)
    seen = field_of_view_mask()
    subjects = [
        load_subject(images[images["source"] == source], seen)
        for source in chosen
        if set(images.loc[images["source"] == source, "method"]) == set(methods)
    ]
    LOGGER.info(
        "auditing %s (%s) on %d participant(s): %s",
        name,
        model_path,
        len(subjects),
        ", ".join(methods),
    )
    similarity, randomised = randomisation_test(model, subjects, methods, plan)
    rng = np.random.default_rng(plan.seed)
    rows, curves = [], []
    for i, subject in enumerate(subjects):
        perturbation, aopc = faithfulness_test(model, subject, methods, rng)
        curves.append(perturbation)
        final = similarity[(similarity["source"] == subject.source)]
        final = final[final["step"] == final["step"].max()].set_index("method")
        for method in methods:
            rows.append(
                {
                    "source": subject.source,
                    "model": name,
                    "method": method,
                    "target": subject.target,
                    "randomised_rank_correlation": final.loc[method, "rank_correlation"],
                    "randomised_ssim": final.loc[method, "ssim"],
                    **localisation_test(subject, subject.maps[method], randomised[method][i]),
                    **aopc[method],
                }
            )
    results = pd.DataFrame(rows).reindex(
        columns=["source", "model", "method", "target", *verdicts.PARTICIPANT_COLUMNS]
    )
    write_outputs(plan.output_dir, name, results, similarity, pd.concat(curves, ignore_index=True))
    return results


def write_outputs(
    output_dir: Path,
    model: str,
    results: pd.DataFrame,
    similarity: pd.DataFrame,
    perturbation: pd.DataFrame,
) -> None:
    """The audit table of one model and, per method, its two kinds of curves."""
    table = verdicts.audit_table(results)
    path = derivatives.path(output_dir, "audit", model=model)
    bids.write_tsv(path, table, verdicts.AUDIT_COLUMNS)
    for method in sorted(set(results["method"])):
        names = {"model": model, "method": derivatives.method_label(method)}
        for kind, curves in (
            ("randomisation_curves", similarity),
            ("perturbation_curves", perturbation),
        ):
            part = curves[curves["method"] == method].drop(columns="method")
            bids.write_tsv(derivatives.path(output_dir, kind, **names), part)
    for _, row in table.iterrows():
        LOGGER.info(
            "audit %s, %s, %s: %.4g (%s) %s",
            model,
            row["method"],
            row["measure"],
            row["value"],
            row["threshold"],
            "passed" if row["passed"] else "FAILED",
        )


def auditable(images: pd.DataFrame, plan: AuditPlan) -> dict[str, Path]:
    """The model file of each model of ``images`` that can be audited, by ``model-`` label.

    Checked before the analyses start, so that an audit that cannot run fails at once (66).
    """
    files = model_files(plan.output_dir, plan.models)
    found = {}
    for model, model_id in images.drop_duplicates("model")[["model", "model_id"]].values:
        if model_id in files:
            found[model] = files[model_id]
        else:
            LOGGER.warning(
                "model-%s (%s) is not audited: no model file with these weights in "
                "%s/models or among the shipped models (give it with --model)",
                model,
                model_id,
                plan.output_dir,
            )
    if not found:
        raise NoInputError(
            f"--audit: no model file found for the heatmaps in {plan.output_dir} "
            f"({', '.join(sorted(set(images['model'])))}); give it with --model"
        )
    return found


def run(images: pd.DataFrame, files: dict[str, Path], plan: AuditPlan) -> pd.DataFrame:
    """Audit every model of ``files``; the per-participant numbers of all of them.

    ``images`` is the analyses' table of explained images (one row per image, model and
    method, with the paths of the heatmap, preprocessed image and masks); ``files`` comes
    from :func:`auditable`.
    """
    torch.set_num_threads(plan.threads)
    results = [
        audit_model(path, images[images["model"] == model], plan) for model, path in files.items()
    ]
    return pd.concat(results, ignore_index=True).drop(columns="target")

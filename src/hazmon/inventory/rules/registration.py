"""Registration rules: R1 (both registries agree), R2 (classes, key processes), R4, R5."""

from __future__ import annotations

from hazmon.inventory.findings import Severity
from hazmon.inventory.loader import Inventory, enterprise_key
from hazmon.inventory.model import Annotation, HazardSource, Programme, RegistryRecord
from hazmon.inventory.reference import reference

E, B, W = Severity.ERROR, Severity.BLOCKER, Severity.WARNING
_SYSTEMS = {"registry": "the hazchem registration system (登记系统)",
            "platform": "the provincial risk platform (信息平台)"}


def _facts(rec: HazardSource | RegistryRecord) -> tuple[str, int, tuple[str, ...]]:
    return rec.hazard_class, rec.grade, tuple(sorted(rec.key_processes))


def r1_registries(inv: Inventory) -> None:
    for ent in inv.enterprises:
        key = enterprise_key(ent.code)
        if ent.has(Programme.MAJOR_HAZARD) and not ent.hazard_sources:
            inv.emit("R1", B, key, ("hazard_sources",),
                     "no major hazard source is identified (GB 18218-2018) and recorded", ent.code)
        for i, src in enumerate(ent.hazard_sources):
            for system, words in _SYSTEMS.items():
                rec = getattr(src.registration, system)
                path = ("hazard_sources", i, "registration", system)
                if rec is None:
                    inv.emit("R1", B, key, ("hazard_sources", i, "registration"),
                             f"hazard source {src.code} is not recorded in {words}", ent.code)
                elif _facts(rec) != _facts(src):
                    inv.emit("R1", B, key, path,
                             f"hazard source {src.code}: {words} records class {rec.hazard_class}, grade "
                             f"{rec.grade}, processes {list(rec.key_processes)}; the survey says "
                             f"{src.hazard_class}, grade {src.grade}, {list(src.key_processes)}: the two "
                             "systems must agree", ent.code)


def r2_classes(inv: Inventory) -> None:
    ref = reference()
    for ent in inv.enterprises:
        key = enterprise_key(ent.code)
        seen: set[str] = set()
        for i, src in enumerate(ent.hazard_sources):
            base = ("hazard_sources", i)
            if src.code in seen:
                inv.emit("UNIQ", E, key, (*base, "code"), f"hazard source code {src.code} appears twice",
                         ent.code)
            seen.add(src.code)
            if src.hazard_class not in ref.hazard_classes:
                inv.emit("R2", E, key, (*base, "class"),
                         f"hazard source {src.code} has class {src.hazard_class!r}; it must be one of "
                         f"{', '.join(ref.hazard_classes)}", ent.code)
            for j, proc in enumerate(src.key_processes):
                if proc not in ref.key_processes:
                    inv.emit("R2", E, key, (*base, "key_processes", j),
                             f"{proc!r} is not one of the 18 key-supervised processes", ent.code)
            if src.key_processes and src.hazard_class != "装置":
                inv.emit("R2", E, key, (*base, "key_processes"),
                         f"only a unit (装置) lists key processes; {src.code} is a {src.hazard_class}", ent.code)
        if ent.has(Programme.KEY_PROCESS) and not any(s.key_processes for s in ent.hazard_sources):
            inv.emit("R2", E, key, ("programmes",),
                     "the enterprise is in the key-process programme but no unit (装置) lists a key process",
                     ent.code)


def r4_annotations(inv: Inventory) -> None:
    for ent in inv.enterprises:
        key, notes = enterprise_key(ent.code), set(ent.annotations)
        if Annotation.LONG_TERM_SHUTDOWN in notes:
            inv.emit("R4", B, key, ("annotations",),
                     "the enterprise is in long-term shutdown (长期停产): not to be rolled out", ent.code)
        if Annotation.SHORT_TERM_SHUTDOWN in notes:
            inv.emit("R4", W, key, ("annotations",),
                     "short-term shutdown (短期停产): data will be flat until production resumes", ent.code)
        clash = {Annotation.PLANNED_PRODUCTION, Annotation.LONG_TERM_SHUTDOWN, Annotation.SHORT_TERM_SHUTDOWN}
        if len(notes & clash) > 1:
            inv.emit("R4", E, key, ("annotations",),
                     "planned production, short-term and long-term shutdown exclude each other", ent.code)


_R5_FIELDS = ("operator", "medium", "design_throughput_t_per_h", "pressure_mpa", "diameter_mm", "length_km",
              "repair_team")


def r5_pipelines(inv: Inventory) -> None:
    for ent in inv.enterprises:
        key = enterprise_key(ent.code)
        if ent.has(Programme.PIPELINE) and not ent.pipelines:
            inv.emit("R5", E, key, ("pipelines",),
                     "the enterprise is in the pipeline programme but records no pipeline", ent.code)
        for i, pipe in enumerate(ent.pipelines):
            for name in _R5_FIELDS:
                if getattr(pipe, name) is None:
                    what = "repair team" if name == "repair_team" else name.replace("_", " ")
                    inv.emit("R5", E, key, ("pipelines", i, name),
                             f"pipeline {pipe.name} does not give its {what}", ent.code)
            if len(pipe.points) < 2:
                inv.emit("R5", E, key, ("pipelines", i, "points"),
                         f"pipeline {pipe.name} needs at least its two end points (longitude, latitude, "
                         "elevation)", ent.code)


RULES = (r1_registries, r2_classes, r4_annotations, r5_pipelines)

"""RCA evaluation: drive the evidence plan on every scenario, diagnose, score.

Top-1 accuracy of the category must stay at or above 90%, and the diagnosis must quote
the scenario's key facts (a limit, an exception line, a host) in its root cause or
evidence lines. The table is printed (``pytest -s``) so a regression shows *which*
scenario moved.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.rca import Diagnosis, Evidence, diagnose, drive, plan
from tests.evals.k8s import NOW
from tests.evals.scenarios import SCENARIOS, Scenario

MIN_ACCURACY = 0.9
MIN_FACT_RECALL = 0.9


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    evidence: Evidence
    diagnosis: Diagnosis

    @property
    def correct(self) -> bool:
        return self.diagnosis.category is self.scenario.expected

    def missing_facts(self) -> list[str]:
        text = " ".join([self.diagnosis.root_cause, *self.diagnosis.evidence])
        return [fact for fact in self.scenario.facts if fact not in text]


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    results = []
    for scenario in SCENARIOS:
        evidence = drive(plan(scenario.subject, NOW), scenario.cluster())
        results.append(Outcome(scenario, evidence, diagnose(evidence)))
    return results


def test_the_suite_has_at_least_25_scenarios_over_at_least_15_categories() -> None:
    assert len(SCENARIOS) >= 25
    assert len({scenario.expected for scenario in SCENARIOS}) >= 15
    assert len({scenario.id for scenario in SCENARIOS}) == len(SCENARIOS)


def test_top1_category_accuracy_is_at_least_90_percent(outcomes: list[Outcome]) -> None:
    print(f"\n{'scenario':44} {'expected':24} {'got':24} conf  facts")
    for outcome in outcomes:
        mark = "ok " if outcome.correct else "BAD"
        missing = outcome.missing_facts()
        print(f"{mark} {outcome.scenario.id:40} {outcome.scenario.expected.value:24} "
              f"{outcome.diagnosis.category.value:24} {outcome.diagnosis.confidence:.2f}  "
              f"{'all' if not missing else 'missing ' + repr(missing)}")
    accuracy = sum(outcome.correct for outcome in outcomes) / len(outcomes)
    print(f"top-1 accuracy: {accuracy:.0%} over {len(outcomes)} scenarios")
    assert accuracy >= MIN_ACCURACY


def test_diagnoses_quote_the_scenarios_key_facts(outcomes: list[Outcome]) -> None:
    expected = sum(len(outcome.scenario.facts) for outcome in outcomes)
    found = expected - sum(len(outcome.missing_facts()) for outcome in outcomes)
    print(f"\nfact recall: {found}/{expected}")
    assert found / expected >= MIN_FACT_RECALL


def test_recommended_playbooks_match_where_the_scenario_names_one(outcomes: list[Outcome]) -> None:
    wrong = [
        (o.scenario.id, o.scenario.playbook, o.diagnosis.playbook)
        for o in outcomes
        if o.scenario.playbook is not None and o.diagnosis.playbook != o.scenario.playbook
    ]
    assert wrong == []


def test_unknown_verdicts_have_low_confidence_and_named_verdicts_do_not(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.diagnosis.category.value == "unknown":
            assert outcome.diagnosis.confidence <= 0.2
        else:
            assert outcome.diagnosis.confidence >= 0.5, outcome.scenario.id


def test_every_scenario_stays_within_the_default_query_budget(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        assert outcome.evidence.queries_used <= 40
        assert not any("budget" in note for note in outcome.evidence.notes), outcome.scenario.id

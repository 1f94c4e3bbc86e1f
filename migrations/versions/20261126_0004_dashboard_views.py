"""SQL views for dashboards

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 03:00:00

A stable read surface over the tables (documented with example queries in
docs/SQL.md): a run's solution samples and tests, run summary, strategy results,
per-test quality, per-problem difficulty, execution throughput.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS: dict[str, str] = {
    # One row per solution sample of a run, in sample order. ``solution_id`` is NULL for
    # a sample that yielded no code (then ``correct`` is false); ``correct`` is NULL
    # while (or where) the solution has no ground-truth label under the run's profile.
    "v_run_solution_samples": """
        SELECT rc.run_id, rc.problem_id, co.sample_index, cs.solution_id,
               CASE WHEN cs.solution_id IS NULL THEN false ELSE gt.passed END AS correct
        FROM run_completions rc
        JOIN runs r ON r.id = rc.run_id
        JOIN completions co ON co.id = rc.completion_id
        LEFT JOIN completion_solutions cs ON cs.completion_id = co.id
        LEFT JOIN ground_truth gt
               ON gt.solution_id = cs.solution_id AND gt.profile = r.ground_truth_profile
        WHERE rc.role = 'solution'
    """,
    # One row per unique unit test of a run's problem; ``weight`` = how many of the
    # run's test samples yielded it (its weight in CodeT's dual agreement).
    "v_run_tests": """
        SELECT rc.run_id, rc.problem_id, ct.unit_test_id, count(*)::int AS weight
        FROM run_completions rc
        JOIN completion_tests ct ON ct.completion_id = rc.completion_id
        WHERE rc.role = 'test'
        GROUP BY rc.run_id, rc.problem_id, ct.unit_test_id
    """,
    "v_run_summary": """
        SELECT r.id AS run_id, r.name, b.name AS benchmark,
               pm.name AS policy_model, tm.name AS test_model,
               r.n_solutions, r.n_tests, r.test_style, r.state, r.error,
               r.created_at, r.finished_at,
               extract(epoch FROM r.finished_at - r.created_at)::float AS wall_seconds,
               rp.problems, rp.problems_scored,
               m.vanilla_pass_at_1, m.oracle_pass_at_1,
               m.coderm_majority_pass_at_1, m.codet_pass_at_1
        FROM runs r
        JOIN benchmarks b ON b.id = r.benchmark_id
        JOIN models pm ON pm.id = r.policy_model_id
        JOIN models tm ON tm.id = r.test_model_id
        LEFT JOIN LATERAL (
            SELECT count(*)::int AS problems,
                   (count(*) FILTER (WHERE state = 'scored'))::int AS problems_scored
            FROM run_problems WHERE run_id = r.id
        ) rp ON true
        LEFT JOIN LATERAL (
            SELECT max(value) FILTER (WHERE name = 'vanilla.pass@1') AS vanilla_pass_at_1,
                   max(value) FILTER (WHERE name = 'oracle.pass@1') AS oracle_pass_at_1,
                   max(value) FILTER (WHERE name = 'coderm_majority.pass@1')
                       AS coderm_majority_pass_at_1,
                   max(value) FILTER (WHERE name = 'codet.pass@1') AS codet_pass_at_1
            FROM run_metrics WHERE run_id = r.id
        ) m ON true
    """,
    "v_strategy_results": """
        SELECT m.run_id, r.name AS run_name,
               substring(m.name FROM '^(.*)\\.[^.]*$') AS strategy,
               substring(m.name FROM '[^.]*$') AS metric,
               substring(m.name FROM '\\.pass@([0-9]+)$')::int AS k,
               m.name, m.value, m.problems
        FROM run_metrics m
        JOIN runs r ON r.id = m.run_id
    """,
    # Individual unit tests as classifiers of the run's solution samples: a test
    # accepts a sample iff the sample passes it (a sample without code, or one never
    # executed, is rejected). Counts per sample, as the report's test-quality table.
    "v_test_quality": """
        SELECT t.run_id, t.problem_id, p.task_id, t.unit_test_id, t.weight,
               count(*)::int AS samples,
               (count(*) FILTER (WHERE e.passed AND s.correct))::int AS tp,
               (count(*) FILTER (WHERE e.passed AND NOT s.correct))::int AS fp,
               (count(*) FILTER (WHERE NOT coalesce(e.passed, false) AND NOT s.correct))::int
                   AS tn,
               (count(*) FILTER (WHERE NOT coalesce(e.passed, false) AND s.correct))::int
                   AS fn,
               (count(*) FILTER (WHERE s.solution_id IS NOT NULL AND e.passed IS NULL))::int
                   AS not_executed,
               (count(*) FILTER (WHERE s.correct IS NULL))::int AS unlabelled
        FROM v_run_tests t
        JOIN runs r ON r.id = t.run_id
        JOIN problems p ON p.id = t.problem_id
        JOIN v_run_solution_samples s ON s.run_id = t.run_id AND s.problem_id = t.problem_id
        LEFT JOIN executions e
               ON e.solution_id = s.solution_id AND e.unit_test_id = t.unit_test_id
              AND e.profile = r.exec_profile
        GROUP BY t.run_id, t.problem_id, p.task_id, t.unit_test_id, t.weight
    """,
    # The same pooled over a run: micro-averaged rates, both FAR/FRR definitions.
    "v_test_quality_run": """
        SELECT run_id, count(*)::int AS tests,
               sum(tp)::int AS tp, sum(fp)::int AS fp, sum(tn)::int AS tn, sum(fn)::int AS fn,
               (sum(tp) + sum(tn))::float / nullif(sum(tp + fp + tn + fn), 0) AS accuracy,
               sum(tp)::float / nullif(sum(tp + fp), 0) AS precision,
               sum(tp)::float / nullif(sum(tp + fn), 0) AS recall,
               sum(fp)::float / nullif(sum(fp + tn), 0) AS far,
               sum(fn)::float / nullif(sum(fn + tp), 0) AS frr,
               sum(fp)::float / nullif(sum(fp + tp), 0) AS far_paper,
               sum(fn)::float / nullif(sum(fn + tn), 0) AS frr_paper
        FROM v_test_quality
        GROUP BY run_id
    """,
    "v_problem_difficulty": """
        SELECT s.run_id, s.problem_id, p.task_id, p.position,
               s.samples, s.correct, s.unique_solutions, s.pass_rate, s.oracle,
               coalesce(t.tests, 0) AS tests, coalesce(t.test_samples, 0) AS test_samples,
               sel.vanilla, sel.oracle AS oracle_score, sel.coderm_majority, sel.codet,
               sel.scores
        FROM (
            SELECT run_id, problem_id, count(*)::int AS samples,
                   (count(*) FILTER (WHERE correct))::int AS correct,
                   count(DISTINCT solution_id)::int AS unique_solutions,
                   avg(correct::int)::float AS pass_rate,
                   bool_or(correct) AS oracle
            FROM v_run_solution_samples
            GROUP BY run_id, problem_id
        ) s
        JOIN problems p ON p.id = s.problem_id
        LEFT JOIN (
            SELECT run_id, problem_id, count(*)::int AS tests, sum(weight)::int AS test_samples
            FROM v_run_tests GROUP BY run_id, problem_id
        ) t ON t.run_id = s.run_id AND t.problem_id = s.problem_id
        LEFT JOIN (
            SELECT run_id, problem_id,
                   max(score) FILTER (WHERE strategy = 'vanilla') AS vanilla,
                   max(score) FILTER (WHERE strategy = 'oracle') AS oracle,
                   max(score) FILTER (WHERE strategy = 'coderm_majority') AS coderm_majority,
                   max(score) FILTER (WHERE strategy = 'codet') AS codet,
                   jsonb_object_agg(strategy, score) AS scores
            FROM selections GROUP BY run_id, problem_id
        ) sel ON sel.run_id = s.run_id AND sel.problem_id = s.problem_id
    """,
    "v_throughput": """
        SELECT b.run_id, count(*)::int AS batches,
               (count(*) FILTER (WHERE b.done_at IS NOT NULL))::int AS batches_done,
               sum(b.pairs)::int AS pairs,
               coalesce(sum(b.executed), 0)::int AS executed,
               coalesce(sum(b.seconds), 0)::float AS batch_seconds,
               min(b.done_at) AS first_done_at, max(b.done_at) AS last_done_at,
               extract(epoch FROM max(b.done_at) - r.created_at)::float AS wall_seconds,
               sum(b.executed)::float / nullif(extract(epoch FROM max(b.done_at) - r.created_at), 0)
                   AS executed_per_s,
               sum(b.executed)::float / nullif(sum(b.seconds), 0) AS executed_per_batch_s
        FROM execution_batches b
        JOIN runs r ON r.id = b.run_id
        GROUP BY b.run_id, r.created_at
    """,
    "v_throughput_minute": """
        SELECT run_id, date_trunc('minute', done_at) AS minute,
               count(*)::int AS batches, sum(pairs)::int AS pairs,
               coalesce(sum(executed), 0)::int AS executed,
               coalesce(sum(seconds), 0)::float AS batch_seconds,
               coalesce(sum(executed), 0)::float / 60 AS executed_per_s
        FROM execution_batches
        WHERE done_at IS NOT NULL
        GROUP BY run_id, date_trunc('minute', done_at)
    """,
}


def upgrade() -> None:
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")

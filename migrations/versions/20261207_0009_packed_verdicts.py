"""verdicts packed one byte a test per (solution, profile, segment of test ordinals)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 18:40:00

Replaces the ``executions`` table (one row per verdict, ~226 bytes a verdict on the
CodeT run) by ``verdicts``: one row per (solution, interned execution profile, segment
of 256 test ordinals) whose ``outcomes`` bytea holds one byte per test (outcome code
and detail slot, ``shared.core.verdict_packing``); detail texts interned in
``verdict_details``; ``passed`` (derivable from the outcome), ``duration_ms`` and the
per-row timestamp are not kept. Unit tests get a dense ordinal per problem, set on
insert by a trigger. ``executions`` becomes a view of the same columns (``duration_ms``
and ``created_at`` NULL), so ad-hoc SQL keeps working; ``v_test_quality`` reads the
packed rows. Runs get ``archived_at`` (``coderm run archive``, ``coderm gc``).

The upgrade converts the stored verdicts in place; the downgrade unpacks them back
into an ``executions`` table (``duration_ms`` and ``created_at`` are lost: NULL and the
downgrade's time).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Codes of shared.core.verdict_packing.OUTCOME_CODES, in order (code = index + 1).
OUTCOMES = ("pass", "fail", "error", "timeout", "crash", "sandbox_error")

FUNCTIONS = (
    f"""
CREATE FUNCTION verdict_outcome(code int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT (ARRAY[{", ".join(f"'{o}'" for o in OUTCOMES)}])[code & 7]
$$""",
    """
CREATE FUNCTION verdict_code(outcomes bytea, pos int) RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN pos >= 0 AND pos < length(outcomes)
                THEN get_byte(outcomes, pos) & 7 ELSE 0 END
$$""",
    """
CREATE FUNCTION unit_test_ordinal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ordinal IS NOT NULL THEN
        RETURN NEW;
    END IF;
    SELECT ordinal INTO NEW.ordinal FROM unit_tests
     WHERE problem_id = NEW.problem_id AND style = NEW.style
       AND content_hash = NEW.content_hash;
    IF FOUND THEN
        RETURN NEW;  -- the insert conflicts and changes nothing
    END IF;
    UPDATE problems SET test_ordinals = test_ordinals + 1 WHERE id = NEW.problem_id
    RETURNING test_ordinals - 1 INTO NEW.ordinal;
    RETURN NEW;
END
$$""",
    """
CREATE TRIGGER unit_test_ordinal BEFORE INSERT ON unit_tests
    FOR EACH ROW EXECUTE FUNCTION unit_test_ordinal()
""",
)

# Every stored verdict, one row each, with the old table's columns.
UNPACKED = """
    SELECT v.solution_id, t.id AS unit_test_id, p.name AS profile,
           verdict_outcome(x.b) AS outcome, (x.b & 7) = 1 AS passed,
           CASE WHEN v.counts IS NOT NULL THEN nullif(
               get_byte(v.counts, 4 * g.pos) * 256 + get_byte(v.counts, 4 * g.pos + 1), 65535)
           END AS tests_run,
           CASE WHEN v.counts IS NOT NULL THEN nullif(
               get_byte(v.counts, 4 * g.pos + 2) * 256 + get_byte(v.counts, 4 * g.pos + 3), 65535)
           END AS tests_passed,
           NULL::float AS duration_ms,
           CASE x.b >> 3
               WHEN 0 THEN NULL
               WHEN 31 THEN (SELECT d.detail FROM verdict_detail_overflow o
                             JOIN verdict_details d ON d.id = o.detail_id
                             WHERE o.solution_id = v.solution_id
                               AND o.profile_id = v.profile_id
                               AND o.segment = v.segment AND o.position = g.pos)
               ELSE (SELECT d.detail FROM verdict_details d WHERE d.id = v.details[x.b >> 3])
           END AS detail
    FROM verdicts v
    JOIN solutions s ON s.id = v.solution_id
    JOIN exec_profiles p ON p.id = v.profile_id
    CROSS JOIN LATERAL generate_series(0, length(v.outcomes) - 1) g(pos)
    CROSS JOIN LATERAL (SELECT get_byte(v.outcomes, g.pos) AS b) x
    JOIN unit_tests t ON t.problem_id = s.problem_id AND t.ordinal = v.segment * 256 + g.pos
    WHERE x.b & 7 <> 0
"""

_TEST_QUALITY_HEAD = """
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
"""
OLD_TEST_QUALITY = (
    _TEST_QUALITY_HEAD
    + """        LEFT JOIN executions e
               ON e.solution_id = s.solution_id AND e.unit_test_id = t.unit_test_id
              AND e.profile = r.exec_profile
        GROUP BY t.run_id, t.problem_id, p.task_id, t.unit_test_id, t.weight
    """
)
NEW_TEST_QUALITY = (
    _TEST_QUALITY_HEAD
    + """        JOIN unit_tests ut ON ut.id = t.unit_test_id
        LEFT JOIN exec_profiles ep ON ep.name = r.exec_profile
        LEFT JOIN verdicts v
               ON v.solution_id = s.solution_id AND v.profile_id = ep.id
              AND v.segment = ut.ordinal / 256
        LEFT JOIN LATERAL (
            SELECT nullif(verdict_code(v.outcomes, ut.ordinal % 256), 0) = 1 AS passed
        ) e ON true
        GROUP BY t.run_id, t.problem_id, p.task_id, t.unit_test_id, t.weight
    """
)

CONVERT = f"""
INSERT INTO exec_profiles (name)
    SELECT DISTINCT profile FROM executions
    UNION SELECT exec_profile FROM runs
    UNION SELECT exec_profile FROM test_banks
    ORDER BY 1;
INSERT INTO verdict_details (digest, detail)
    SELECT DISTINCT md5(detail)::uuid, detail FROM executions WHERE detail <> '';
CREATE TEMP TABLE _cells ON COMMIT DROP AS
    SELECT e.solution_id, p.id AS profile_id, (t.ordinal / 256)::smallint AS segment,
           t.ordinal % 256 AS pos,
           array_position(ARRAY[{", ".join(f"'{o}'" for o in OUTCOMES)}]::text[], e.outcome::text)
               AS code,
           d.id AS detail_id, e.tests_run, e.tests_passed
    FROM executions e
    JOIN exec_profiles p ON p.name = e.profile
    JOIN unit_tests t ON t.id = e.unit_test_id
    LEFT JOIN verdict_details d ON e.detail <> '' AND d.digest = md5(e.detail)::uuid;
CREATE TEMP TABLE _slots ON COMMIT DROP AS
    SELECT solution_id, profile_id, segment, detail_id,
           row_number() OVER (PARTITION BY solution_id, profile_id, segment
                              ORDER BY min(pos))::int AS slot
    FROM _cells WHERE detail_id IS NOT NULL
    GROUP BY solution_id, profile_id, segment, detail_id;
CREATE TEMP TABLE _bytes ON COMMIT DROP AS
    SELECT c.solution_id, c.profile_id, c.segment, c.pos,
           c.code | (CASE WHEN s.slot IS NULL THEN 0 WHEN s.slot <= 30 THEN s.slot
                          ELSE 31 END << 3) AS b,
           c.tests_run, c.tests_passed
    FROM _cells c
    LEFT JOIN _slots s USING (solution_id, profile_id, segment, detail_id);
CREATE INDEX ON _bytes (solution_id, profile_id, segment, pos);
INSERT INTO verdicts (solution_id, profile_id, segment, outcomes, details, counts)
    SELECT k.solution_id, k.profile_id, k.segment,
           decode(string_agg(lpad(to_hex(coalesce(c.b, 0)), 2, '0'), '' ORDER BY g.pos), 'hex'),
           sl.details,
           CASE WHEN k.with_counts THEN decode(string_agg(
               lpad(to_hex(coalesce(least(c.tests_run, 65534), 65535)), 4, '0')
               || lpad(to_hex(coalesce(least(c.tests_passed, 65534), 65535)), 4, '0'),
               '' ORDER BY g.pos), 'hex') END
    FROM (SELECT solution_id, profile_id, segment, max(pos) AS last,
                 bool_or(tests_run IS NOT NULL OR tests_passed IS NOT NULL) AS with_counts
          FROM _cells GROUP BY solution_id, profile_id, segment) k
    CROSS JOIN LATERAL generate_series(0, k.last) g(pos)
    LEFT JOIN _bytes c ON c.solution_id = k.solution_id AND c.profile_id = k.profile_id
                      AND c.segment = k.segment AND c.pos = g.pos
    LEFT JOIN (SELECT solution_id, profile_id, segment,
                      array_agg(detail_id ORDER BY slot) AS details
               FROM _slots WHERE slot <= 30 GROUP BY solution_id, profile_id, segment) sl
           ON sl.solution_id = k.solution_id AND sl.profile_id = k.profile_id
          AND sl.segment = k.segment
    GROUP BY k.solution_id, k.profile_id, k.segment, k.with_counts, sl.details;
INSERT INTO verdict_detail_overflow (solution_id, profile_id, segment, position, detail_id)
    SELECT c.solution_id, c.profile_id, c.segment, c.pos, c.detail_id
    FROM _cells c JOIN _slots s USING (solution_id, profile_id, segment, detail_id)
    WHERE s.slot > 30;
"""


def _ordinals() -> None:
    op.add_column(
        "problems", sa.Column("test_ordinals", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("unit_tests", sa.Column("ordinal", sa.Integer(), nullable=True))
    op.execute(
        """
        UPDATE unit_tests t SET ordinal = o.ordinal
        FROM (SELECT id, (row_number() OVER (PARTITION BY problem_id ORDER BY id) - 1)::int
                         AS ordinal
              FROM unit_tests) o
        WHERE o.id = t.id
        """
    )
    op.execute(
        """
        UPDATE problems p SET test_ordinals = n.next
        FROM (SELECT problem_id, max(ordinal) + 1 AS next FROM unit_tests GROUP BY problem_id) n
        WHERE n.problem_id = p.id
        """
    )
    op.alter_column("unit_tests", "ordinal", nullable=False)
    op.create_index(
        "ux_unit_tests_problem_ordinal", "unit_tests", ["problem_id", "ordinal"], unique=True
    )


def upgrade() -> None:
    _ordinals()
    op.add_column("runs", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "exec_profiles",
        sa.Column("id", sa.SmallInteger(), sa.Identity(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
    )
    op.create_table(
        "verdict_details",
        sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),
        sa.Column("digest", sa.Uuid(), nullable=False, unique=True),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_table(
        "verdicts",
        sa.Column(
            "solution_id",
            sa.BigInteger(),
            sa.ForeignKey("solutions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "profile_id", sa.SmallInteger(), sa.ForeignKey("exec_profiles.id"), nullable=False
        ),
        sa.Column("segment", sa.SmallInteger(), nullable=False),
        sa.Column("outcomes", sa.LargeBinary(), nullable=False),
        sa.Column("details", sa.ARRAY(sa.Integer()), nullable=True),
        sa.Column("counts", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("solution_id", "profile_id", "segment"),
    )
    op.create_table(
        "verdict_detail_overflow",
        sa.Column("solution_id", sa.BigInteger(), nullable=False),
        sa.Column("profile_id", sa.SmallInteger(), nullable=False),
        sa.Column("segment", sa.SmallInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("detail_id", sa.Integer(), sa.ForeignKey("verdict_details.id"), nullable=False),
        sa.PrimaryKeyConstraint("solution_id", "profile_id", "segment", "position"),
    )
    for statement in FUNCTIONS:
        op.execute(statement)
    for statement in CONVERT.split(";\n"):
        if statement.strip():
            op.execute(statement)
    op.execute(f"CREATE OR REPLACE VIEW v_test_quality AS {NEW_TEST_QUALITY}")
    op.drop_table("executions")
    op.execute(f"CREATE VIEW executions AS {UNPACKED}")


def downgrade() -> None:
    op.execute("DROP VIEW executions")
    op.create_table(
        "executions",
        sa.Column("solution_id", sa.BigInteger(), nullable=False),
        sa.Column("unit_test_id", sa.BigInteger(), nullable=False),
        sa.Column("profile", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("tests_run", sa.Integer(), nullable=True),
        sa.Column("tests_passed", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["solution_id"], ["solutions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["unit_test_id"], ["unit_tests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("solution_id", "unit_test_id", "profile"),
    )
    op.execute(
        "INSERT INTO executions (solution_id, unit_test_id, profile, outcome, passed, "
        "tests_run, tests_passed, duration_ms, detail) "
        f"SELECT * FROM ({UNPACKED}) u"
    )
    op.execute(f"CREATE OR REPLACE VIEW v_test_quality AS {OLD_TEST_QUALITY}")
    op.drop_table("verdict_detail_overflow")
    op.drop_table("verdicts")
    op.drop_table("verdict_details")
    op.drop_table("exec_profiles")
    op.execute("DROP TRIGGER unit_test_ordinal ON unit_tests")
    op.execute("DROP FUNCTION unit_test_ordinal()")
    op.execute("DROP FUNCTION verdict_code(bytea, int)")
    op.execute("DROP FUNCTION verdict_outcome(int)")
    op.drop_index("ux_unit_tests_problem_ordinal", table_name="unit_tests")
    op.drop_column("unit_tests", "ordinal")
    op.drop_column("problems", "test_ordinals")
    op.drop_column("runs", "archived_at")

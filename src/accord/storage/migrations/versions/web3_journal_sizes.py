"""Loading: the processor sizes its slices from an index of (seq, n_items), not by reading past each entry's body.

`Journal.read` first lists the sizes of up to 5,000 entries after its cursor. `n_items` is stored after the body
(an import entry holds about 1,000 messages, some 600 kB in SQLite overflow pages), so without this index every
slice walked the overflow pages of the next 5,000 entries: 4-5 s per slice on the 100,000-customer demo's journal
(4,554 entries), most of which it then did not load. The covering index answers from a few index pages.

Revision ID: web3
Revises: web2
Create Date: 2026-11-24
"""

from alembic import op

revision = "web3"
down_revision = "web2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_journal_seq_n_items", "journal", ["seq", "n_items"], unique=False, if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_journal_seq_n_items", table_name="journal")

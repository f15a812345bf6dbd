"""Every compound gets a review status, 'unreviewed' where it has none."""

from kgmigrate import Migration, ops

migration = Migration(
    author="vitalyst-data",
    steps=[
        ops.batched("Compound", "SET e.review_status = $default", where="e.review_status IS NULL",
                    default="unreviewed", validation="e.review_status IS NOT NULL",
                    down="REMOVE e.review_status",
                    # inverse: clears every 'unreviewed' (also ones set before this migration)
                    down_where="e.review_status = $default"),
    ],
)

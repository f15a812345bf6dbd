"""Study phases read 'Phase II' instead of 'II'."""

from kgmigrate import Migration, ops

migration = Migration(
    author="vitalyst-data",
    depends_on=["V0001"],
    steps=[
        ops.batched("Study", "SET e.phase = 'Phase ' + e.phase",
                    where="NOT e.phase STARTS WITH 'Phase '",
                    validation="e.phase STARTS WITH 'Phase '",
                    down="SET e.phase = substring(e.phase, 6)",
                    down_where="e.phase STARTS WITH 'Phase '"),
    ],
)

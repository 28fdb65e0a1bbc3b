"""The data model, the core's bottom floor: the row contract and its lineage columns, a batch's
state, a run's plan, what a version commits, costs, chat requests and results, probe records
and the run context. Everything else in the core imports down to it; it imports nothing above
the foundation (errors, registry, cache, storage) and the data it describes (recipe, inputs, store)."""

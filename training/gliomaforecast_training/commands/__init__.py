"""``gliomaforecast-train`` sub-commands: each module defines NAME, HELP, add_arguments(parser) and
run(args) -> exit code; register it by appending its module name to COMMANDS."""

COMMANDS = [
    "cohort",
    "benchmark_cohort",
    "cohort_realism",
    "evolution",
    "multitask",
    "guided_ddim",
    "latent_diffusion",
    "growth_prior",
]

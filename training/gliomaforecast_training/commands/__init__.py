"""``gliomaforecast-train`` sub-commands: each module defines NAME, HELP, add_arguments(parser) and
run(args) -> exit code; register it by appending its module name to COMMANDS. A model family's command (its
actions: prepare, fit, train, export, ...) is built by ``common.command.family_command``. A command module imports
its family's modules only inside its functions (the CLI's ``--help`` imports nothing heavy).

May import the core, ``..common`` and (inside functions) ``..cohort`` and the model families."""

COMMANDS = [
    "cohort",
    "benchmark_cohort",
    "cohort_realism",
    "evolution",
    "multitask",
    "guided_ddim",
    "latent_diffusion",
    "recurrence_unet",
    "growth_prior",
    "input_reference",
]

"""What several model families share (no family owns it).

* ``command``: the command factory: ``module_main`` (the ``python -m`` entry of a training module) and ``Action`` /
  ``family_command`` (a family's ``gliomaforecast-train`` sub-command dispatching to its actions);
* ``loop``: the training-loop helpers: progress over steps and wall time, cosine learning rate, loss log, checkpoint
  writing, DDP start and teardown;
* ``export``: the export tail: the ONNX export call (opset 17, TorchScript exporter), onnxruntime sessions,
  the registry record of an export, metrics files, registration with the core's writer;
* ``schedule``: the diffusion families' noise schedule (the core's linear schedule, T = 1000) and v-target noising;
* ``cases``: the patient folders of a cohort;
* ``layers``: torch layers used by more than one family's network (FiLM).

May import the core (``gliomaforecast``), torch, MONAI and onnxruntime; never a family package (``evolution``,
``multitask``, ``guided``, ``latent``, ``recurrence_unet``), ``cohort`` or ``commands``.
"""

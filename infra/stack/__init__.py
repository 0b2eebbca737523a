"""The embedded local stack and what runs on it: ``local`` (starting and stopping the processes),
``supervisor`` (restarting them under ``warden up``), ``provision`` (an agent with its policy and
funds), ``kms_servers`` (local servers speaking the cloud KMS protocols) and the demo's script."""

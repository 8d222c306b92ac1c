"""Federated training over Flower: clients that never share their data train one detector (`twinids federate`)."""

"""TaskFlow's ``taskflow.engines.action_engine`` package: where programs import the engine classes from."""

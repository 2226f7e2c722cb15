"""Qt adapters and widgets. Models are only ever touched from the EngineThread."""

"""The engines that run models: one small interface per kind of model, one implementation per engine."""

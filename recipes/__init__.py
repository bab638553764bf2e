"""The recipes shipped with gan-infogan-plugin: TOML files, installed as the package
``gan_infogan_plugin.recipe_files`` and read with importlib.resources."""

"""This directory is an lvlmbench suite: runs that collect it activate the plugin at configure time
(models checked, settings fitted, the generation cache opened under the rootdir) and print its
report. Elsewhere the installed plugin stays idle and imports nothing heavy."""

lvlmbench_suite = True

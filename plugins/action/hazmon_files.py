# hazmon_files, control-node side: a file given as `template:` (a file under the role's templates/)
# is rendered here, then the module (plugins/modules/hazmon_files.py) gets plain `content`.
#
# Why not `content: "{{ lookup('ansible.builtin.template', ...) }}"`: ansible-core 2.19's template
# lookup deep-copies every variable of the host for each file it renders, and loads itself anew each
# time. With a role's ten files on a wave of boxes that was half the control node's CPU in a re-run
# of the rollout (py-spy, make bench). Rendered as the template action does it (a shallow copy of
# the variables, one templar), the same files cost a small fraction of that.
from __future__ import annotations

import os
from collections.abc import Mapping

# ansible_managed and the template_* variables, exactly as the template action and lookup make them
# (ansible-core is pinned: this module is internal to it).
from ansible._internal._templating import _template_vars
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        files = args.get("files") or []
        if not isinstance(files, list):
            raise AnsibleActionFail(f"files: a list of files is expected, got {type(files).__name__}")
        given = []
        for index, spec in enumerate(files):
            if isinstance(spec, Mapping) and spec.get("template") is not None:
                spec = dict(spec)
                template = spec.pop("template")
                if spec.get("content") is not None:
                    raise AnsibleActionFail(f"files[{index}] ({spec.get('path')}): give content or template, not both")
                # A file to remove needs no content: its template is not rendered.
                if spec.get("state", "present") != "absent":
                    spec["content"] = self._render(str(template), spec.get("path"), task_vars)
            given.append(spec)
        args["files"] = given
        result.update(self._execute_module(module_args=args, task_vars=task_vars))
        return result

    def _render(self, template: str, dest: str | None, task_vars: dict) -> str:
        try:
            source = self._find_needle("templates", template)
        except AnsibleError as exc:
            raise AnsibleActionFail(f"template {template}: {exc}") from exc
        data = trust_as_template(self._loader.get_text_file_contents(source))
        # Includes and imports inside a template resolve as they would under the template action.
        searchpath = []
        for path in [*task_vars.get("ansible_search_path", []), self._loader._basedir, os.path.dirname(source)]:
            searchpath += [os.path.join(path, "templates"), path]
        variables = task_vars.copy()
        variables.update(_template_vars.generate_ansible_template_vars(
            path=template, fullpath=source, dest_path=dest,
            include_ansible_managed="ansible_managed" not in variables,
        ))
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=variables)
        rendered = templar.template(data, escape_backslashes=False)
        return "" if rendered is None else str(rendered)

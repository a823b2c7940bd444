#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: mkplan
short_description: Run an mkplan HSM master-key plan on the target
description:
  - Wraps the C(mkplan) binary on the target host to validate, dry-run (C(check)), run or
    resume an EP11 wrapping-key change plan, to read the state of its newest run, and to
    verify a signed run report.
  - In check mode, O(command=run) runs C(mkplan check), which changes nothing, and the diff
    shows what the run would do step by step.
  - A PIN given with O(pin) is written to the plan's PIN file (mode 0600) only for the
    duration of the run and removed afterwards; it never reaches a command line or an
    environment. Approvals are handed to mkplan as an approvals file.
  - The result is C(changed) only when a run reached a step that changes the host; in check
    mode, when C(mkplan check) says a step would change it.
version_added: "0.1.0"
author:
  - mkplan contributors
options:
  command:
    description:
      - V(validate) checks the plan (schema and safety rules, no host access).
      - V(check) is the honest dry run against the host.
      - V(run) executes the plan; in check mode it is V(check).
      - V(resume) continues the unfinished run O(run_id).
      - V(status) reads the state of run O(run_id) or of the newest run, without changing
        anything, e.g. to wait until every host of a batch waits at a TKE checkpoint.
      - V(verify) runs C(mkplan report verify) on run O(run_id) or the directory O(report).
    type: str
    required: true
    choices: [validate, check, run, resume, status, verify]
  plan:
    description: The plan file on the target. Required for V(validate), V(check) and V(run).
    type: path
  executable:
    description: The mkplan binary on the target.
    type: path
    default: mkplan
  root:
    description: The host root (C(--root)); a simulated host in rehearsals and tests.
    type: path
  state_dir:
    description: The state directory (C(--state-dir)) where runs and journals are kept.
    type: path
    default: /var/lib/mkplan
  pin:
    description:
      - The token's USER PIN. Written to O(pin_file) (under O(root)), mode 0600, only while
        mkplan runs (C(check) reads it too), and removed after. Never logged.
    type: str
  pin_file:
    description:
      - "The PIN file the plan names (C(pin: {file: ...})), as the plan writes it (a host
        path, resolved under O(root)). Required with O(pin)."
    type: path
  approvals:
    description:
      - Approvals given ahead of time, written to a private approvals file for mkplan.
    type: list
    elements: dict
    suboptions:
      checkpoint:
        description: The checkpoint's id, name or position.
        type: str
        required: true
      approver:
        description: Who approves.
        type: str
        required: true
  approvals_file:
    description: An approvals file on the target (C(approvals:) list of checkpoint/approver).
    type: path
  operator:
    description: Who runs mkplan (C(--operator)), recorded in the journal and the report.
    type: str
  run_id:
    description: The run for V(resume), V(status) and V(verify).
    type: str
  decision:
    description: For V(resume) of a step interrupted half-way, C(--retry-step) or C(--accept-step).
    type: str
    choices: [retry, accept]
  report:
    description: A report directory for V(verify) (instead of O(run_id)).
    type: path
  after:
    description:
      - For V(status) without O(run_id), look only at runs newer than this run id (the
        newest run before a new one was started), so an earlier run is never mistaken for it.
    type: str
  async_results:
    description:
      - For V(status), the C(results_file) of the asynchronous task that started the run.
        RV(job_ended) says whether that task has ended (e.g. refused before it recorded a run).
    type: path
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - A run parked at a checkpoint (mkplan exit 6, the concurrent procedure waiting for the TKE)
    ends the task without failing it, RV(state) V(parked) and RV(waiting_at) naming the
    checkpoint. A run that did not finish otherwise (interrupted, halted, needs a decision)
    fails the task with its state, so that a later play can resume it with O(command=resume).
'''

EXAMPLES = r'''
- name: Dry run
  mkplan.hsm.mkplan:
    command: run
    plan: /etc/mkplan/wk-change.yaml
  check_mode: true

- name: Run the change with the batch's approvals
  mkplan.hsm.mkplan:
    command: run
    plan: /etc/mkplan/wk-change.yaml
    pin: "{{ vault_ep11_pin }}"
    pin_file: /run/mkplan/ep11.pin
    approvals:
      - {checkpoint: tke-commit, approver: alice}
      - {checkpoint: tke-commit, approver: bob}
      - {checkpoint: tke-activate, approver: alice}
  no_log: false
  register: change
'''

RETURN = r'''
run_id:
  description: The run's id.
  returned: when a run was found or made
  type: str
  sample: 20261130T170210Z-60dd55
state:
  description:
    - C(succeeded), C(failed), C(rescued), C(aborted) for a finished run; C(parked) (waiting
      at a checkpoint for the TKE), C(halted) (a step failed after the point of no return),
      C(interrupted) or C(unfinished) (running, or stopped without a trace) otherwise.
    - C(valid), C(invalid), C(checked), C(precondition failed), C(verified) or
      C(not verified) for the commands that make no run.
  returned: always
  type: str
outcome:
  description: The finished run's outcome; null while it has not finished.
  returned: when a run was found
  type: str
waiting_at:
  description: The checkpoint (id, else name) the unfinished run is at; null otherwise.
  returned: for status
  type: str
steps:
  description: The step recap from the run report (position, name, kind, status, summary).
  returned: when the run has a report
  type: list
  elements: dict
report:
  description: The run report's directory, its files, the SHA-256 of report.json, and whether it verifies.
  returned: when the run has a report
  type: dict
job_ended:
  description: Whether the asynchronous task named by O(async_results) has ended.
  returned: for status with O(async_results)
  type: bool
rc:
  description: mkplan's exit status.
  returned: when mkplan ran
  type: int
stdout_lines:
  description: mkplan's standard output.
  returned: when mkplan ran
  type: list
  elements: str
stderr_lines:
  description: mkplan's log (it never contains a PIN).
  returned: when mkplan ran
  type: list
  elements: str
'''

import hashlib
import json
import os

from ansible.module_utils.basic import AnsibleModule

FINISHED = ('succeeded', 'failed', 'rescued', 'aborted')
# Step kinds that change the host when they run.
CHANGING_KINDS = ('stop', 'start', 'backup', 'restore', 'migrate', 'set_expected_wkvp',
                  'set_expected_mkvps', 'command', 'mk_change.reencipher', 'mk_change.finalize',
                  'mk_change.cancel')
REPORT_FILES = ('report.json', 'report.json.sig', 'report.dsse.json', 'report.html',
                'signer.pub.pem', 'journal.jsonl', 'plan.yaml', 'plan.sha256')


def global_args(params):
    args = [params['executable']]
    if params['root']:
        args += ['--root', params['root']]
    args += ['--state-dir', params['state_dir']]
    return args


def runs_dir(params):
    return os.path.join(params['state_dir'], 'runs')


def run_ids(params):
    try:
        return sorted(os.listdir(runs_dir(params)))
    except OSError:
        return []


def journal_state(run_dir):
    """The run's state from its journal (read only): finished outcome, or where it is."""
    outcome = None
    open_step = None
    interrupted = False
    parked = False
    halted = False
    with open(os.path.join(run_dir, 'journal.jsonl')) as journal:
        for line in journal:
            try:
                event = json.loads(line)
            except ValueError:
                break  # a torn last line: what came before stands
            kind = event.get('kind')
            step = (event.get('data') or {}).get('step')
            if kind == 'run_finished':
                outcome = event['data'].get('outcome')
            elif kind == 'step_started':
                open_step = step
            elif kind.startswith('step_') and step == open_step:
                open_step = None
            elif kind == 'interrupted':
                interrupted = True
            elif kind == 'checkpoint_parked':
                parked = True
            elif kind == 'run_halted':
                halted = True
            elif kind == 'resumed':
                interrupted = parked = halted = False
    waiting_at = None
    if outcome is None and open_step and open_step.get('kind') == 'checkpoint':
        waiting_at = open_step.get('id') or open_step.get('name')
    if outcome:
        state = outcome
    elif parked:
        state = 'parked'
    elif halted:
        state = 'halted'
    elif interrupted:
        state = 'interrupted'
    else:
        state = 'unfinished'
    return state, outcome, waiting_at


def report_facts(module, params, run_dir):
    path = os.path.join(run_dir, 'report.json')
    if not os.path.exists(path):
        return None, None
    with open(path, 'rb') as handle:
        data = handle.read()
    report = json.loads(data.decode('utf-8'))
    rc, out, err = module.run_command(global_args(params) + ['report', 'verify', run_dir])
    steps = [dict(position=s['position'], name=s['name'], kind=s['kind'],
                  status=s['status'], summary=s['summary']) for s in report['steps']]
    facts = dict(
        dir=run_dir,
        files=[f for f in REPORT_FILES if os.path.exists(os.path.join(run_dir, f))],
        report_sha256=hashlib.sha256(data).hexdigest(),
        verified=rc == 0,
        verification=out.splitlines(),
    )
    return facts, steps


def changed_host(steps):
    return any(s['kind'] in CHANGING_KINDS and s['status'] in ('succeeded', 'failed', 'uncertain')
               for s in steps or [])


def describe_run(module, params, run_id):
    run_dir = os.path.join(runs_dir(params), run_id)
    state, outcome, waiting_at = journal_state(run_dir)
    report, steps = report_facts(module, params, run_dir)
    return dict(run_id=run_id, state=state, outcome=outcome, waiting_at=waiting_at,
                report=report, steps=steps)


def write_private(path, text):
    """A new file only its owner can read (the PIN, the approvals)."""
    if os.path.lexists(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)


def host_path(params, path):
    root = params['root'] or '/'
    return os.path.join(root, path.lstrip('/'))


def approvals_args(module, params):
    args = []
    if params['approvals']:
        path = os.path.join(module.tmpdir, 'approvals.yaml')
        entries = [dict(checkpoint=a['checkpoint'], approver=a['approver'])
                   for a in params['approvals']]
        # JSON is YAML: mkplan reads it as an approvals file.
        write_private(path, json.dumps(dict(approvals=entries)) + '\n')
        args += ['--approvals', path]
    if params['approvals_file']:
        args += ['--approvals', params['approvals_file']]
    if params['operator']:
        args += ['--operator', params['operator']]
    return args


def execute(module, params, args):
    """Runs mkplan with the PIN file in place for exactly as long as it runs."""
    pin_path = None
    if params['pin'] is not None:
        pin_path = host_path(params, params['pin_file'])
        parent = os.path.dirname(pin_path)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o700)
        write_private(pin_path, params['pin'] + '\n')
    try:
        return module.run_command(args)
    finally:
        if pin_path and os.path.lexists(pin_path):
            os.unlink(pin_path)


def lines(rc, out, err):
    return dict(rc=rc, stdout_lines=out.splitlines(), stderr_lines=err.splitlines())


def do_validate(module, params):
    rc, out, err = module.run_command(global_args(params) + ['validate', '--format', 'json', params['plan']])
    result = dict(changed=False, state='valid' if rc == 0 else 'invalid', **lines(rc, out, err))
    if rc != 0:
        module.fail_json(msg='the plan is not valid (mkplan validate exit %d)' % rc, **result)
    module.exit_json(**result)


def do_check(module, params):
    rc, out, err = execute(module, params, global_args(params) + ['check', params['plan']])
    would = [line for line in out.splitlines() if 'would ' in line]
    # In check mode, `changed` predicts: the run would change the host (Ansible's convention).
    result = dict(changed=module.check_mode and bool(would),
                  state='checked' if rc == 0 else 'precondition failed', **lines(rc, out, err))
    if module._diff:
        result['diff'] = dict(before='', after='\n'.join(would) + '\n',
                              before_header='host now', after_header='after mkplan run')
    if rc != 0:
        module.fail_json(msg='mkplan check: a precondition does not hold (exit %d)' % rc, **result)
    module.exit_json(**result)


def finish(module, rc, out, err, described, what):
    result = dict(changed=changed_host(described.get('steps')), **described)
    result.update(lines(rc, out, err))
    if rc == 0 and described['state'] == 'succeeded':
        module.exit_json(**result)
    # Parked (exit 6) is where the concurrent procedure waits for the TKE: not a failure; a
    # later play resumes the run with O(command=resume). Ansible fails a result with a
    # nonzero rc unless it says failed itself.
    if rc == 6 and described['state'] == 'parked':
        module.exit_json(failed=False, **result)
    module.fail_json(msg='mkplan %s: run %s is %s (exit %d)' % (
        what, described.get('run_id'), described['state'], rc), **result)


def do_run(module, params):
    before = set(run_ids(params))
    args = global_args(params) + ['run', '--non-interactive'] + approvals_args(module, params) + [params['plan']]
    rc, out, err = execute(module, params, args)
    new = [r for r in run_ids(params) if r not in before]
    if not new:
        # Refused before the run was recorded (invalid plan, preflight): nothing changed.
        module.fail_json(msg='mkplan run refused to start (exit %d): nothing was changed' % rc,
                         changed=False, state='not started', **lines(rc, out, err))
    finish(module, rc, out, err, describe_run(module, params, new[-1]), 'run')


def do_resume(module, params):
    args = global_args(params) + ['resume', '--non-interactive'] + approvals_args(module, params)
    if params['decision']:
        args.append('--%s-step' % params['decision'])
    args.append(params['run_id'])
    rc, out, err = execute(module, params, args)
    finish(module, rc, out, err, describe_run(module, params, params['run_id']), 'resume')


def job_ended(path):
    """Whether an async task's results file holds its final result (not the placeholder)."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return False
    return not data.get('started') or bool(data.get('finished'))


def do_status(module, params):
    run_id = params['run_id']
    if run_id is None:
        newer = [r for r in run_ids(params) if params['after'] is None or r > params['after']]
        run_id = newer[-1] if newer else None
    result = dict(changed=False)
    if params['async_results']:
        result['job_ended'] = job_ended(params['async_results'])
    if run_id is None:
        module.exit_json(state='no run', run_id=None, outcome=None, waiting_at=None, **result)
    result.update(describe_run(module, params, run_id))
    module.exit_json(**result)


def do_verify(module, params):
    target = params['report'] or params['run_id']
    rc, out, err = module.run_command(global_args(params) + ['report', 'verify', target])
    result = dict(changed=False, state='verified' if rc == 0 else 'not verified', **lines(rc, out, err))
    if rc != 0:
        module.fail_json(msg='the report %s does not verify' % target, **result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            command=dict(type='str', required=True,
                         choices=['validate', 'check', 'run', 'resume', 'status', 'verify']),
            plan=dict(type='path'),
            executable=dict(type='path', default='mkplan'),
            root=dict(type='path'),
            state_dir=dict(type='path', default='/var/lib/mkplan'),
            pin=dict(type='str', no_log=True),
            pin_file=dict(type='path'),
            approvals=dict(type='list', elements='dict', options=dict(
                checkpoint=dict(type='str', required=True),
                approver=dict(type='str', required=True),
            )),
            approvals_file=dict(type='path'),
            operator=dict(type='str'),
            run_id=dict(type='str'),
            decision=dict(type='str', choices=['retry', 'accept']),
            report=dict(type='path'),
            after=dict(type='str'),
            async_results=dict(type='path'),
        ),
        required_if=[
            ('command', 'validate', ('plan',)),
            ('command', 'check', ('plan',)),
            ('command', 'run', ('plan',)),
            ('command', 'resume', ('run_id',)),
            ('command', 'verify', ('run_id', 'report'), True),
        ],
        required_together=[('pin', 'pin_file')],
        supports_check_mode=True,
    )
    params = module.params
    command = params['command']
    if module.check_mode and command in ('run', 'check'):
        do_check(module, params)
    if module.check_mode and command == 'resume':
        module.exit_json(changed=False, state='not resumed in check mode', run_id=params['run_id'])
    handlers = dict(validate=do_validate, check=do_check, run=do_run, resume=do_resume,
                    status=do_status, verify=do_verify)
    handlers[command](module, params)


if __name__ == '__main__':
    main()

// The recorded calls, judged against the template's unmodified policies by an IAM policy simulator.
//
//   node simulate.mjs --stack STACK.json --calls CALLS.jsonl --creds CREDS.json
//                     [--stack S2.json --creds C2.json ...] [--probe PROBES.jsonl] [--necessity]
//
// Every line of CALLS.jsonl (iam_emulator.py's record) made with a key of a CREDS.json (roles.py
// load) is evaluated with @cloud-copilot/iam-simulate (pinned in package.json; install.sh installs
// it with `npm ci` into $TIDEMARK_TOOLS_DIR/aws-node) as the role that key belongs to: each of its
// actions on each resource ARN, and its implied calls (as the caller's role, or as "role_arn").
// Beside them, what the template itself makes AWS do with a role: a template schedule's target
// invocation and dead letters (the schedule's role), an event source mapping's polling and an
// on-failure destination's send (the function's role). Other keys' lines (the harness's) are skipped.
//
// The policies are the roles' inline policies as STACK.json has them, plus copies of the AWS
// managed policies SAM attaches (managed_policies.json). Two things are supplied around them: a
// KMS key's key policy is AWS's default one (the account may use the key as its IAM policies
// allow), and a condition on secretsmanager:ResourceTag/<key> is read as aws:ResourceTag/<key>
// (the same lookup of the secret's tags on AWS; the simulator's data lacks the former).
//
// PROBES.jsonl: hypothetical calls, {"function" (or "role": logical id), "action", "resources",
// "context"?, "expect": "allowed"|"denied"}, evaluated against the first stack. A probe expected
// allowed stands for a call on a path no scenario reaches: --necessity counts it as a call.
//
// Prints {"verdicts": [...], "denied": n, "unexpected": n, ...} as JSON; exit 1 if a call or an
// implied call is denied, or a probe is not as expected. --necessity adds "necessity": for each
// statement of each role (template statements only), which evaluations need it; a statement none
// needs is "unused", and so is an action or resource entry of it that can be dropped with no
// evaluation denied. Exit 1 also when anything is unused. Statements are keyed by role logical id,
// policy name and index, so several stacks (scenarios) add up.
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const TARGET_ACTION = { lambda: 'lambda:InvokeFunction', sqs: 'sqs:SendMessage', sns: 'sns:Publish',
  states: 'states:StartExecution', events: 'events:PutEvents' }

function fail(message) {
  process.stderr.write(`simulate.mjs: ${message}\n`)
  process.exit(2)
}

function simulator() {
  const tools = process.env.TIDEMARK_TOOLS_DIR || join(homedir(), '.cache', 'tidemark-tools')
  for (const dir of [process.env.TIDEMARK_AWS_NODE_DIR, join(tools, 'aws-node'), here]) {
    if (!dir) continue
    try {
      return createRequire(join(dir, 'package.json'))('@cloud-copilot/iam-simulate')
    } catch {}
  }
  fail('@cloud-copilot/iam-simulate is not installed: run infra/local/install.sh')
}

function parseArgs(argv) {
  const out = { stacks: [], creds: [], calls: [], probes: [], necessity: false, out: '-' }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = () => argv[++i] ?? fail(`${arg} needs a value`)
    if (arg === '--stack') out.stacks.push(value())
    else if (arg === '--creds') out.creds.push(value())
    else if (arg === '--calls') out.calls.push(value())
    else if (arg === '--probe') out.probes.push(value())
    else if (arg === '--out') out.out = value()
    else if (arg === '--necessity') out.necessity = true
    else fail(`unknown argument ${arg}`)
  }
  if (!out.stacks.length || out.stacks.length !== out.creds.length) fail('give --stack and --creds in pairs')
  return out
}

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))
const readLines = (path) => readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l))
const asList = (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v])
const managed = readJson(join(here, 'managed_policies.json'))

// One stack's roles: ARN -> {logical, name, account, policies: [{name, document, template}]}.
function rolesOf(stack) {
  const roles = new Map()
  // The stack's own AWS::IAM::ManagedPolicy resources, by what a role's ManagedPolicyArns holds
  // (their Ref); a document built with !Sub is JSON text.
  const own = new Map()
  for (const [logical, res] of Object.entries(stack.Resources)) {
    if (res.Type !== 'AWS::IAM::ManagedPolicy') continue
    const doc = res.Properties.PolicyDocument
    const entry = { logical, document: typeof doc === 'string' ? JSON.parse(doc) : doc }
    for (const key of [res.PhysicalId, res.Attributes?.Arn, res.Attributes?.PolicyArn]) if (key) own.set(key, entry)
  }
  for (const [logical, res] of Object.entries(stack.Resources)) {
    if (res.Type !== 'AWS::IAM::Role') continue
    const policies = (res.Properties.Policies || []).map((p) => ({ name: p.PolicyName, document: p.PolicyDocument, template: true }))
    const unevaluated = []
    for (const arn of res.Properties.ManagedPolicyArns || []) {
      if (own.has(arn)) policies.push({ name: own.get(arn).logical, document: own.get(arn).document, template: true })
      else if (managed[arn]) policies.push({ name: `managed:${arn.split('/').pop()}`, document: managed[arn], template: false })
      else unevaluated.push(arn)
    }
    roles.set(res.Attributes.Arn, { logical, name: res.PhysicalId, account: stack.Stack.account, policies, unevaluated })
  }
  return roles
}

// What the template makes AWS do with a role, beside what the functions call.
function templateEvaluations(stack, roles) {
  const out = []
  const roleOfFunction = (name) => Object.values(stack.Resources).find(
    (r) => r.Type === 'AWS::Lambda::Function' && (r.PhysicalId === name || r.Attributes.Arn === name))?.Properties.Role
  for (const [logical, res] of Object.entries(stack.Resources)) {
    const p = res.Properties || {}
    if (res.Type === 'AWS::Scheduler::Schedule' && p.Target?.RoleArn) {
      const service = p.Target.Arn.split(':')[2]
      if (TARGET_ACTION[service]) out.push({ role: p.Target.RoleArn, action: TARGET_ACTION[service], resource: p.Target.Arn, why: `template schedule ${logical} invokes its target` })
      if (p.Target.DeadLetterConfig?.Arn) out.push({ role: p.Target.RoleArn, action: 'sqs:SendMessage', resource: p.Target.DeadLetterConfig.Arn, why: `template schedule ${logical}'s dead letters` })
    } else if (res.Type === 'AWS::Lambda::EventSourceMapping' && p.EventSourceArn?.includes(':sqs:')) {
      for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes']) {
        out.push({ role: roleOfFunction(p.FunctionName), action, resource: p.EventSourceArn, why: `event source mapping ${logical} polls its queue` })
      }
    } else if (res.Type === 'AWS::Lambda::EventInvokeConfig') {
      for (const kind of ['OnFailure', 'OnSuccess']) {
        const dest = p.DestinationConfig?.[kind]?.Destination
        const service = dest?.split(':')[2]
        if (dest && TARGET_ACTION[service]) out.push({ role: roleOfFunction(p.FunctionName), action: TARGET_ACTION[service], resource: dest, why: `${logical}'s ${kind} destination` })
      }
    }
  }
  return out.filter((e) => roles.has(e.role)).map((e) => ({ ...e, source: 'template', context: {} }))
}

function callEvaluations(lines, byKey) {
  const out = []
  let skipped = 0
  for (const line of lines) {
    const who = byKey.get(line.access_key)
    if (!who) { skipped++; continue }
    const base = { functions: who.functions, api: line.api, status: line.status, time: line.time }
    const checks = line.actions || [{ action: line.action, resources: line.resources, context: line.context }]
    for (const check of checks) {
      for (const resource of check.resources) out.push({ ...base, source: 'call', role: who.role, action: check.action, resource, context: check.context || {} })
    }
    for (const implied of line.implied || []) {
      for (const resource of implied.resources) {
        out.push({ ...base, source: 'implied', role: implied.role_arn || who.role, action: implied.action, resource, context: implied.context || {}, why: implied.why })
      }
    }
  }
  return { evaluations: out, skipped }
}

// secretsmanager:ResourceTag/<key> is aws:ResourceTag/<key> for a secret (see the header).
function aliasConditionKeys(document) {
  const statements = asList(document.Statement).map((s) => {
    if (!s.Condition) return s
    const condition = {}
    for (const [op, keys] of Object.entries(s.Condition)) {
      condition[op] = Object.fromEntries(Object.entries(keys).map(([k, v]) => [k.replace(/^secretsmanager:ResourceTag\//i, 'aws:ResourceTag/'), v]))
    }
    return { ...s, Condition: condition }
  })
  return { ...document, Statement: statements }
}

function defaultKeyPolicy(account) {
  return { Version: '2012-10-17', Statement: [{ Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*' }] }
}

const sim = simulator()

async function evaluate(role, e, policies = role.policies) {
  const context = { ...e.context }
  const ignored = []
  const account = e.resource.split(':')[4] || role.account
  for (let attempt = 0; attempt < 8; attempt++) {
    const simulation = {
      identityPolicies: policies.map((p) => ({ name: p.name, policy: aliasConditionKeys(p.document) })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: e.action.startsWith('kms:') ? defaultKeyPolicy(account) : undefined,
      request: { action: e.action, principal: `arn:aws:sts::${role.account}:assumed-role/${role.name}/${role.logical}`, resource: { accountId: account, resource: e.resource }, contextVariables: context }
    }
    try {
      const r = await sim.runSimulation(simulation, {})
      if (r.resultType === 'error') return { result: 'error', error: JSON.stringify(r.errors), ignored }
      const allows = r.resultType === 'single' ? r.result.analysis?.identityAnalysis?.allowStatements || [] : []
      const allowedBy = allows.map((a) => {
        const policy = policies.find((p) => p.name === a.policyId)
        const index = policy ? asList(policy.document.Statement).findIndex((s) => JSON.stringify(aliasConditionKeys({ Statement: [s] }).Statement[0]) === JSON.stringify(a.statement)) : -1
        return `${a.policyId}#${index}`
      })
      return { result: r.overallResult, allowedBy, ignored }
    } catch (err) {
      const key = /Condition key (\S+) not found/i.exec(err.message)?.[1]
      const found = key && Object.keys(context).find((k) => k.toLowerCase() === key.toLowerCase())
      if (!found) return { result: 'error', error: err.message, ignored }
      ignored.push(found)
      delete context[found]
    }
  }
  return { result: 'error', error: 'too many unknown context keys', ignored }
}

function dedupe(evaluations) {
  const map = new Map()
  for (const e of evaluations) {
    const key = JSON.stringify([e.role, e.action, e.resource, e.context])
    if (!map.has(key)) map.set(key, { ...e, occurrences: 0 })
    map.get(key).occurrences++
  }
  return [...map.values()]
}

// Variants of a policy set with one statement (or one action or resource entry of it) removed.
function* removals(role) {
  for (const [pi, policy] of role.policies.entries()) {
    if (!policy.template) continue
    const statements = asList(policy.document.Statement)
    for (const [si, statement] of statements.entries()) {
      const id = { role: role.logical, policy: policy.name, statement: si, sid: statement.Sid }
      const without = (replacement) => role.policies.map((p, i) => (i !== pi ? p : { ...p, document: { ...p.document, Statement: statements.flatMap((s, j) => (j !== si ? [s] : replacement)) } }))
      yield { id, kind: 'statement', entry: null, policies: without([]) }
      for (const field of ['Action', 'Resource']) {
        const entries = asList(statement[field])
        if (entries.length < 2) continue
        for (const entry of entries) yield { id, kind: field, entry, policies: without([{ ...statement, [field]: entries.filter((x) => x !== entry) }]) }
      }
    }
  }
}

async function necessity(stacks) {
  const report = new Map()
  for (const { roles, judged } of stacks) {
    for (const [arn, role] of roles) {
      const mine = judged.filter((e) => e.role === arn && e.result === 'Allowed')
      for (const removal of removals(role)) {
        const key = JSON.stringify(removal.id)
        if (!report.has(key)) report.set(key, { ...removal.id, needed_by: [], entries: { Action: new Map(), Resource: new Map() } })
        const entry = report.get(key)
        const affected = mine.filter((e) => e.allowedBy.some((a) => a === `${removal.id.policy}#${removal.id.statement}`))
        const broken = []
        for (const e of affected) {
          if ((await evaluate(role, e, removal.policies)).result !== 'Allowed') broken.push(`${e.action} ${e.resource}`)
        }
        if (removal.kind === 'statement') entry.needed_by.push(...broken)
        else entry.entries[removal.kind].set(removal.entry, (entry.entries[removal.kind].get(removal.entry) || false) || broken.length > 0)
      }
    }
  }
  return [...report.values()].map((r) => {
    const unusedEntries = (kind) => [...r.entries[kind]].filter(([, needed]) => !needed).map(([e]) => e)
    const needed_by = [...new Set(r.needed_by)].sort()
    const unused = needed_by.length === 0 // then every entry is unused: not listed again
    return { role: r.role, policy: r.policy, statement: r.statement, sid: r.sid, needed_by, unused,
      unused_actions: unused ? [] : unusedEntries('Action'), unused_resources: unused ? [] : unusedEntries('Resource') }
  })
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const lines = args.calls.flatMap(readLines)
  const stacks = []
  const verdicts = []
  let skipped = 0
  for (const [i, stackPath] of args.stacks.entries()) {
    const stack = readJson(stackPath)
    const roles = rolesOf(stack)
    const byKey = new Map()
    for (const [fn, c] of Object.entries(readJson(args.creds[i]))) {
      const entry = byKey.get(c.access_key_id) || { role: c.role_arn, functions: [] }
      entry.functions.push(fn)
      byKey.set(c.access_key_id, entry)
    }
    const calls = callEvaluations(lines, byKey)
    skipped = i === 0 ? calls.skipped : Math.min(skipped, calls.skipped)
    const judged = []
    for (const e of dedupe([...calls.evaluations, ...templateEvaluations(stack, roles)])) {
      const role = roles.get(e.role)
      const verdict = role ? await evaluate(role, e) : { result: 'error', error: `no role ${e.role} in ${stackPath}` }
      judged.push({ ...e, ...verdict, role_logical_id: role?.logical })
    }
    stacks.push({ roles, judged, stack })
    verdicts.push(...judged)
  }
  const probes = []
  for (const probe of args.probes.flatMap(readLines)) {
    const { roles, stack } = stacks[0]
    const logical = probe.role || stack.Resources[probe.function]?.Properties.Role && [...roles.values()].find((r) => stack.Resources[probe.function].Properties.Role === stack.Resources[r.logical].Attributes.Arn)?.logical
    const entry = [...roles.entries()].find(([, r]) => r.logical === logical)
    for (const resource of probe.resources) {
      const e = { source: 'probe', role: entry?.[0], action: probe.action, resource, context: probe.context || {} }
      const verdict = entry ? await evaluate(entry[1], e) : { result: 'error', error: `no role for ${probe.function || probe.role}` }
      const allowed = verdict.result === 'Allowed'
      probes.push({ ...probe, resource, ...verdict, as_expected: probe.expect ? allowed === (probe.expect === 'allowed') : allowed })
      // A call the code makes on a path no scenario reaches (expected allowed) needs its
      // statement as a recorded call does.
      if (allowed && probe.expect !== 'denied') stacks[0].judged.push({ ...e, ...verdict })
    }
  }
  const denied = verdicts.filter((v) => v.result !== 'Allowed')
  const report = { verdicts, denied: denied.length, probes, unexpected: probes.filter((p) => !p.as_expected).length, skipped_calls: skipped,
    unevaluated_managed_policies: [...new Set(stacks.flatMap((s) => [...s.roles.values()].flatMap((r) => r.unevaluated)))] }
  let unused = 0
  if (args.necessity) {
    report.necessity = await necessity(stacks)
    unused = report.necessity.filter((n) => n.unused || n.unused_actions.length || n.unused_resources.length).length
    report.unused = unused
  }
  const body = JSON.stringify(report, null, 1) + '\n'
  if (args.out === '-') process.stdout.write(body)
  else writeFileSync(args.out, body)
  for (const v of denied) process.stderr.write(`denied: ${v.role_logical_id ?? v.role} ${v.action} on ${v.resource} (${v.source}${v.api ? ` of ${v.api}` : ''}${v.error ? `: ${v.error}` : ''})\n`)
  process.exit(denied.length || report.unexpected || unused ? 1 : 0)
}

await main()

#!/usr/bin/python3
"""Read messages the Go encoder produced as a celery 5.2 worker does.

Used by TestPythonWorkerReadsGoMessages:

    /usr/bin/python3 crosscheck.py IN.json OUT.json

IN holds a list of {name, headers_amqp (base64 of the field table as
amqp091-go writes it), body, content_type, content_encoding, properties}.
For each, this decodes the headers with py-amqp, builds the kombu Message
and the celery worker Request for it, runs the task in-process with
Request.execute() (the tracer the prefork pool runs: result storing, chain
and callback publishing), and writes what it saw to OUT.
"""

import base64
import json
import sys

import amqp.serialization
import kombu.messaging
from kombu.message import Message

from celery import Celery
from celery.utils.saferepr import saferepr
from celery.worker.request import Request

published = []


def _record(self, body, priority, content_type, content_encoding, headers,
            properties, routing_key, mandatory, immediate, exchange, declare,
            timeout=None):
    if isinstance(body, bytes):
        body = body.decode('utf-8')
    props = {k: v for k, v in properties.items() if k != 'delivery_info'}
    published.append({
        'exchange': exchange or '', 'routing_key': routing_key or '',
        'body': body, 'content_type': content_type,
        'content_encoding': content_encoding, 'priority': priority or 0,
        'headers_amqp': base64.b64encode(
            amqp.serialization.dumps('F', [dict(headers or {})])).decode(),
        'properties': props,
    })


kombu.messaging.Producer._publish = _record

app = Celery('crosscheck', broker='memory://', backend='cache+memory://',
             set_as_current=True)


@app.task(name='tasks.add', shared=False)
def add(*args):
    return sum(args)


@app.task(name='tasks.mul', shared=False)
def mul(x, y):
    return x * y


@app.task(name='tasks.echo', shared=False)
def echo(*args, **kwargs):
    return {
        'types': [type(a).__name__ for a in args],
        'kwarg_types': {k: type(v).__name__ for k, v in kwargs.items()},
        'args': list(args),
        'kwargs': kwargs,
    }


def iso(d):
    return d.isoformat() if d is not None else None


def check(case):
    raw = base64.b64decode(case['headers_amqp'])
    (headers,), _ = amqp.serialization.loads('F', raw, 0)
    conn = app.connection_for_read()
    props = case['properties']
    message = Message(
        body=case['body'].encode('utf-8'), delivery_tag=1,
        content_type=case['content_type'],
        content_encoding=case['content_encoding'],
        delivery_info={'exchange': '', 'routing_key': 'celery'},
        properties=props, headers=headers, channel=conn.default_channel,
        accept=['application/json'],
    )
    # The consumer's first look: protocol 2 by the task header.
    type_ = message.headers['task']
    req = Request(message, on_ack=lambda *a: None, on_reject=lambda *a: None,
                  hostname='cross@check', eventer=None, app=app,
                  connection_errors=(), task=app.tasks[type_])
    args, kwargs, embed = message.decode()
    rd = req.request_dict
    seen = {
        'id': req.id, 'type': req.type, 'name': req.name,
        'eta': iso(req.eta), 'expires': iso(req.expires),
        'time_limits': list(req.time_limits),
        'argsrepr': req.argsrepr, 'kwargsrepr': req.kwargsrepr,
        'python_argsrepr': saferepr(tuple(args), 1024),
        'python_kwargsrepr': saferepr(kwargs, 1024),
        'root_id': req.root_id, 'parent_id': req.parent_id,
        'group': rd.get('group'), 'group_index': rd.get('group_index'),
        'retries': rd.get('retries'), 'origin': rd.get('origin'),
        'ignore_result': req.ignore_result, 'reply_to': req.reply_to,
        'correlation_id': req.correlation_id,
        'priority': req.delivery_info.get('priority'),
        'custom': {k: v for k, v in headers.items() if k.startswith('x-')},
        'header_types': {k: type(v).__name__ for k, v in headers.items()},
        'embed_keys': sorted((embed or {}).keys()),
        'chain_tasks': [s['task'] for s in (embed or {}).get('chain') or []],
    }
    del published[:]
    retval = req.execute()
    meta = app.backend.get_task_meta(req.id)
    seen['retval'] = retval
    seen['stored_status'] = meta['status']
    seen['stored_result'] = meta['result'] if meta['status'] == 'SUCCESS' else None
    seen['published'] = list(published)
    return seen


def main():
    with open(sys.argv[1], encoding='utf-8') as f:
        cases = json.load(f)
    out = {}
    for case in cases:
        try:
            out[case['name']] = check(case)
        except Exception as exc:  # reported to the Go test
            out[case['name']] = {'error': repr(exc)}
    with open(sys.argv[2], 'w', encoding='utf-8') as f:
        json.dump(out, f, default=repr)


if __name__ == '__main__':
    main()

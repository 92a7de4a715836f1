#!/usr/bin/env python3
"""Renders tests/fixtures/chat's corpus with Python's jinja2, configured exactly as HuggingFace transformers renders
chat templates, and writes the expected renderings the .NET renderer is tested against.

    apt-get install python3-jinja2        # Debian 12: jinja2 3.1.2
    python3 tools/chat-goldens.py         # rewrites tests/fixtures/chat/*goldens.json

The environment is transcribed from transformers' src/transformers/utils/chat_template_utils.py
(_compile_jinja_template and render_jinja_template, v4.46 to v4.57; transformers itself is not installable here):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols]),
its own tojson (json.dumps with ensure_ascii=False), raise_exception raising TemplateError, strftime_now, and
render(messages=..., tools=..., documents=..., add_generation_prompt=..., **special_tokens_map, **kwargs).
strftime_now reads a fixed clock (NOW below) so that the goldens do not change with the day; the tests pass the
same instant to the .NET renderer.
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "chat")
NOW = datetime.datetime(2026, 12, 3, 12, 34, 56)
SPECIAL_TOKENS_ATTRIBUTES = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
                             "additional_special_tokens"]


class AssistantTracker(Extension):
    # transformers' {% generation %} tag; rendering without return_assistant_tokens_mask only renders its body.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def compile_template(source, trim_and_lstrip=True):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=trim_and_lstrip, lstrip_blocks=trim_and_lstrip,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


USER = [{"role": "user", "content": "%s"}]
SYSTEM_USER = [{"role": "system", "content": "%s"}, {"role": "user", "content": "%s"}]
QWEN3C_PROMPTS = [(".template", USER, False), (".template.with-thinking", USER, True),
                  (".template.with-system", SYSTEM_USER, False), (".template.with-system-and-thinking", SYSTEM_USER, True)]


def special_tokens_map(config):
    # PreTrainedTokenizerBase.special_tokens_map: each attribute that is set, AddedToken as its content.
    def text(v):
        return v.get("content") if isinstance(v, dict) else v

    result = {}
    for name in SPECIAL_TOKENS_ATTRIBUTES:
        value = config.get(name)
        if name == "additional_special_tokens":
            value = [text(v) for v in value] if value else None
        else:
            value = text(value)
        if value:
            result[name] = value
    return result


def outcome(fn):
    try:
        return {"text": fn()}
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"error": "syntax", "message": str(e)}
    except jinja2.exceptions.UndefinedError as e:
        return {"error": "undefined", "message": str(e)}
    except jinja2.exceptions.SecurityError as e:
        return {"error": "security", "message": str(e)}
    except jinja2.exceptions.TemplateError as e:
        return {"error": "raised", "message": str(e)}
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError, OverflowError) as e:
        return {"error": "type", "message": f"{type(e).__name__}: {e}"}


def main():
    corpus = json.load(open(os.path.join(ROOT, "conversations.json"), encoding="utf-8"))
    templates = sorted(os.listdir(os.path.join(ROOT, "templates")))
    goldens = {"generator": f"tools/chat-goldens.py, jinja2 {jinja2.__version__}, Python {sys.version.split()[0]}",
               "now": NOW.isoformat(), "renderings": []}
    for name in templates:
        config = json.load(open(os.path.join(ROOT, "templates", name, "tokenizer_config.json"), encoding="utf-8"))
        source = config["chat_template"]
        for case in corpus:
            def render():
                kwargs = dict(special_tokens_map(config))
                kwargs.update(case.get("variables", {}))
                return compile_template(source).render(
                    messages=case["messages"], tools=case.get("tools"), documents=None,
                    add_generation_prompt=case.get("add_generation_prompt", False), **kwargs)
            result = {"template": name, "case": case["name"]}
            result.update(outcome(render))
            goldens["renderings"].append(result)
    with open(os.path.join(ROOT, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump(goldens, f, ensure_ascii=False, indent=1)
        f.write("\n")

    # The small templates twice: in transformers' environment, and in jinja2's defaults as a plain jinja2.Template has
    # them (no trim_blocks, lstrip_blocks, loop controls, {% generation %}, raise_exception, strftime_now; jinja2's own
    # tojson), sandboxed as LlamaExport renders every template.
    features = json.load(open(os.path.join(ROOT, "features.json"), encoding="utf-8"))
    out = {"generator": goldens["generator"], "now": NOW.isoformat(), "renderings": []}
    for syntax, trim in (("transformers", True), ("jinja2-defaults", False)):
        for case in features:
            result = {"name": case["name"], "syntax": syntax}
            env = compile_template if trim else (lambda source: ImmutableSandboxedEnvironment().from_string(source))
            result.update(outcome(lambda: env(case["template"]).render(**case.get("context", {}))))
            out["renderings"].append(result)
    with open(os.path.join(ROOT, "features-goldens.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")

    # qwen3.c's export.py (build_prompts): jinja2.Template(chat_template) as it is, rendered with a user message "%s"
    # (and a system one), add_generation_prompt=True and enable_thinking False/True, written as its four files.
    prompts = {"generator": goldens["generator"], "renderings": []}
    for name in templates:
        config = json.load(open(os.path.join(ROOT, "templates", name, "tokenizer_config.json"), encoding="utf-8"))
        for suffix, messages, thinking in QWEN3C_PROMPTS:
            result = {"template": name, "file": suffix}
            result.update(outcome(lambda: jinja2.Template(config["chat_template"]).render(
                messages=messages, add_generation_prompt=True, enable_thinking=thinking)))
            prompts["renderings"].append(result)
    with open(os.path.join(ROOT, "qwen3c-prompts-goldens.json"), "w", encoding="utf-8") as f:
        json.dump(prompts, f, ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum(1 for r in goldens["renderings"] + out["renderings"] if "error" in r)
    print(f"{len(goldens['renderings'])} conversation renderings, {len(out['renderings'])} feature renderings, {errors} of them errors")


if __name__ == "__main__":
    main()

"""Build a tiny Qwen3-architecture model and tokenizer, locally and deterministically (no downloads).

Run with the vLLM venv's Python (it needs torch, transformers and tokenizers):
    python build_tiny_qwen3.py OUT_DIR [SEED]
Random weights from a fixed seed: the model writes nonsense, which is the point:
the product must survive whatever a real model emits.
"""

import json
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
CORPUS = [
    "Compute the number of ways to choose 3 of 10 items. The answer is 120.",
    "Solve for x: 2x + 3 = 11. So x = 4. Final answer: \\boxed{4}",
    '{"verdict": "accept", "reasons": "clear", "own_answer": "7", "agrees_with_reference": true}',
    '{"problem": "How many edges does K5 have?", "answer": "10"}',
    '{"topics": ["graph theory", "number theory"], "subfields": ["algebra"]}',
    '{"correct": false, "extracted_answer": "12", "rationale": "differs"}',
    "Let us think step by step about physics, chemistry, biology and mathematics.",
]


def build(out: Path, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=450, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.add_tokens(["<think>", "</think>"], special_tokens=False)  # as in Qwen3: plain added tokens
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(fast), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=4096, tie_word_embeddings=True,
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"), pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        bos_token_id=None, torch_dtype="bfloat16")
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    (out / "built.json").write_text(json.dumps({"seed": seed, "vocab": len(fast)}))


if __name__ == "__main__":
    build(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)

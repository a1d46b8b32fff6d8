"""Verdicts: is a case faster, slower, or within the noise of its baseline? One rule
(:func:`speedtrain.verdicts.rule.compare`) and one way to judge a case
(:func:`speedtrain.verdicts.rule.judge_case`), used by the suite, ``compare`` and the report."""

import pytest
from sqlalchemy import select

from db.flags import update_flags
from db.schema import AnalysisResult, Content
from library.settings import Thresholds

ALL = {"nsfw-default", "nsfw-vit", "safety-checker", "coherence"}


def add(Session, results):
    with Session.begin() as session:
        content = Content(sha256=str(len(results)).rjust(64, "0") + "")
        session.add(content)
        session.flush()
        for analyser, label, score, scores in results:
            session.add(AnalysisResult(content_id=content.id, analyser=analyser, version="v1",
                                       label=label, score=score, scores=scores))
    return content.id


def flags(Session, cid):
    with Session() as session:
        c = session.get(Content, cid)
        return c.flagged, c.flag_nsfw, c.flag_incoherent, c.analysed


@pytest.mark.parametrize("results, expected", [
    ([("nsfw-default", "sfw", 0.1, {"nsfw": 0.1})], (False, False, False, True)),
    ([("nsfw-default", "nsfw", 0.9, {"nsfw": 0.9})], (True, True, False, True)),
    ([("nsfw-vit", "nsfw", 0.6, {"normal": 0.4, "nsfw": 0.6})], (True, True, False, True)),
    ([("nsfw-vit", "normal", 0.3, {"normal": 0.7, "nsfw": 0.3})], (False, False, False, True)),
    ([("safety-checker", "nsfw", 0.02, {})], (True, True, False, True)),
    ([("safety-checker", "sfw", -0.05, {})], (False, False, False, True)),
    ([("coherence", "semi-incoherent", 0.4,
       {"coherent": 0.35, "incoherent": 0.25, "semi-incoherent": 0.4})], (True, False, True, False)),
    ([("coherence", "coherent", 0.8,
       {"coherent": 0.8, "incoherent": 0.1, "semi-incoherent": 0.1})], (False, False, False, False)),
])
def test_flag_rule(Session, results, expected):
    cid = add(Session, results)
    with Session.begin() as session:
        changed = update_flags(session, [cid], Thresholds(), ALL)
    assert flags(Session, cid) == expected
    assert changed == ([cid] if expected != (False, False, False, False) else [])


def test_disabled_analysers_do_not_flag_and_thresholds_recompute(Session):
    cid = add(Session, [("nsfw-vit", "nsfw", 0.6, {"normal": 0.4, "nsfw": 0.6})])
    with Session.begin() as session:
        update_flags(session, None, Thresholds(), {"nsfw-default"})
    assert flags(Session, cid)[0] is False
    with Session.begin() as session:
        assert update_flags(session, None, Thresholds(), ALL) == [cid]
    assert flags(Session, cid)[0] is True
    with Session.begin() as session:
        assert update_flags(session, None, Thresholds(nsfw_vit=0.7), ALL) == [cid]
    assert flags(Session, cid)[0] is False


def test_an_errored_result_never_flags(Session):
    cid = add(Session, [("nsfw-default", None, None, {})])
    with Session.begin() as session:
        session.execute(select(AnalysisResult)).scalar_one().error = "decode failed"
    with Session.begin() as session:
        update_flags(session, [cid], Thresholds(), ALL)
    assert flags(Session, cid) == (False, False, False, False)


def test_recomputing_all_walks_the_library_in_chunks(Session, monkeypatch):
    """A whole-library recompute (thresholds changed) reads a chunk of contents at a time,
    not every result at once; every chunk boundary is handled."""
    import db.flags

    monkeypatch.setattr(db.flags, "CHUNK", 2)
    ids = []
    with Session.begin() as session:
        for i in range(5):
            content = Content(sha256=f"{i:064x}")
            session.add(content)
            session.flush()
            score = 0.9 if i % 2 else 0.1
            session.add(AnalysisResult(content_id=content.id, analyser="nsfw-default",
                                       version="v1", label=None, score=score, scores={}))
            session.add(AnalysisResult(content_id=content.id, analyser="tagger-jtp",
                                       version="t1", label=None, score=0.5, scores={}))
            ids.append(content.id)
    with Session.begin() as session:
        changed = update_flags(session, None, Thresholds(), ALL)
    assert sorted(changed) == ids
    assert [flags(Session, cid)[0] for cid in ids] == [False, True, False, True, False]


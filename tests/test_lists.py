"""The /lessons list: tabs, filters, pagination, and the home page figures."""

from __future__ import annotations

import re

import pytest


def _titles(html: str) -> list[str]:
    return re.findall(r'<td[^>]*><a href="/lessons/[a-z0-9]{10}">([^<]+)</a></td>', html)


@pytest.fixture
def people(make_user):
    make_user("gb.author", "GBR", ("contributor",))
    make_user("gb.other", "GBR", ("contributor",))
    make_user("gb.an", "GBR", ("contributor", "analyst"))
    make_user("us.an", "USA", ("contributor", "analyst"))


def test_mine_lists_my_lessons_in_every_status_and_nobody_elses(people, make_lesson,
                                                               login_as):
    make_lesson("gb.author", "draft", title="My draft")
    make_lesson("gb.author", "submitted", title="My submitted")
    make_lesson("gb.author", "rejected", analyst="gb.an", title="My rejected")
    make_lesson("gb.other", "submitted", title="Someone else's")
    html = login_as("gb.author").get("/lessons?tab=mine").text
    assert sorted(_titles(html)) == ["My draft", "My rejected", "My submitted"]


def test_to_review_lists_submitted_lessons_of_the_analysts_nation(people, make_lesson,
                                                                 login_as, make_user):
    make_user("us.author", "USA", ("contributor",))  # not the analyst: nobody reviews their own
    make_lesson("gb.author", "submitted", title="GBR submitted", releasable_to=["FVEY"])
    make_lesson("gb.author", "validated", analyst="gb.an", title="GBR validated")
    make_lesson("gb.author", "draft", title="GBR draft")
    make_lesson("us.author", "submitted", title="USA submitted", releasable_to=["FVEY"])
    assert _titles(login_as("gb.an").get("/lessons?tab=review").text) == ["GBR submitted"]
    assert _titles(login_as("us.an").get("/lessons?tab=review").text) == ["USA submitted"]


def test_to_review_is_empty_for_non_analysts(people, make_lesson, login_as):
    make_lesson("gb.author", "submitted")
    client = login_as("gb.other")
    assert _titles(client.get("/lessons?tab=review").text) == []
    assert "To review" not in client.get("/lessons").text


def test_all_lists_what_i_can_see_and_filters_by_status_and_kind(people, make_lesson,
                                                                login_as):
    make_lesson("gb.author", "validated", analyst="gb.an", title="Validated lesson",
                releasable_to=["USA"])
    make_lesson("gb.author", "submitted", title="Submitted workaround", kind="workaround",
                friction="No shared crypto", workaround="Runners", releasable_to=["USA"])
    make_lesson("gb.author", "validated", analyst="gb.an", title="GBR only")
    make_lesson("gb.author", "draft", title="Draft", releasable_to=["USA"])
    client = login_as("us.an")
    assert sorted(_titles(client.get("/lessons?tab=all").text)) == [
        "Submitted workaround", "Validated lesson"]
    assert _titles(client.get("/lessons?status=validated").text) == ["Validated lesson"]
    assert _titles(client.get("/lessons?kind=workaround").text) == ["Submitted workaround"]
    assert _titles(client.get("/lessons?status=validated&kind=workaround").text) == []


def test_tab_counts_follow_the_policy(people, make_lesson, login_as):
    make_lesson("gb.author", "submitted", releasable_to=["USA"])
    make_lesson("gb.author", "submitted")
    html = login_as("us.an").get("/lessons").text
    assert re.search(r'All I can see <span class="count">1</span>', html)


def test_bad_filter_values_are_ignored_not_errors(people, make_lesson, login_as):
    make_lesson("gb.author", "submitted", title="Visible")
    client = login_as("gb.author")
    response = client.get("/lessons?tab=secret&status=bogus&kind=nope&page=-4")
    assert response.status_code == 200
    assert _titles(response.text) == ["Visible"]


def test_lists_paginate(app, people, make_lesson, login_as):
    app.config["LESSONS_PER_PAGE"] = 3
    for n in range(7):
        make_lesson("gb.author", "draft", title=f"Lesson {n}")
    client = login_as("gb.author")
    first, second, third = (client.get(f"/lessons?tab=mine&page={p}").text for p in (1, 2, 3))
    assert "Page 1 of 3" in first and 'rel="next"' in first
    seen = _titles(first) + _titles(second) + _titles(third)
    assert sorted(seen) == [f"Lesson {n}" for n in range(7)]
    assert _titles(client.get("/lessons?tab=mine&page=9").text) == []


def test_home_page_shows_my_figures_and_review_queue(people, make_lesson, login_as):
    make_lesson("gb.author", "draft")
    make_lesson("gb.author", "submitted")
    home = login_as("gb.author").get("/").text
    assert "<strong>2</strong> lessons written by you" in home
    assert "<strong>1</strong> draft not yet submitted" in home
    analyst_home = login_as("gb.an").get("/").text
    assert "<strong>1</strong> submitted lesson of GBR to review" in analyst_home

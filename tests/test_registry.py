import pytest

from transfercore.errors import DriverLoadError, DriverNotFound, OptionError
from transfercore.registry import installed_names, list_drivers, load_driver_class, open_location


def test_a_driver_from_another_distribution_is_found_without_core_changes(third_party):
    assert "third" in installed_names()
    endpoint = open_location("third://host/some/path?depth=7")
    assert endpoint.path == "/some/path"
    assert endpoint.driver.authority == "host"
    assert endpoint.driver.settings == {"depth": 7}


def test_unknown_driver_names_what_is_installed(third_party):
    with pytest.raises(DriverNotFound) as info:
        open_location("nosuch:///x")
    assert "'nosuch'" in str(info.value)
    assert "third" in info.value.installed


def test_import_failure_becomes_a_load_error_naming_the_distribution(third_party):
    with pytest.raises(DriverLoadError) as info:
        load_driver_class("brokenone")
    assert "thirdparty-drivers" in str(info.value)
    assert "module_that_is_not_installed" in str(info.value)


def test_unknown_or_bad_driver_options_are_rejected_by_name(third_party):
    with pytest.raises(OptionError, match="no option 'width'.*depth"):
        open_location("third:///x?width=3")
    with pytest.raises(OptionError, match="depth='deep'"):
        open_location("third:///x?depth=deep")


def test_listing_shows_broken_drivers_beside_working_ones(third_party):
    infos = {i.name: i for i in list_drivers()}
    good, bad = infos["third"], infos["brokenone"]
    assert not good.broken
    assert good.distribution == "thirdparty-drivers" and good.version == "1.2.3"
    assert good.capabilities["restart"] == "none" and good.capabilities["max_writers"] == 2
    assert good.details == {"backend": "made-up"}
    assert good.options == {"depth": "how deep"}
    assert bad.broken and "ModuleNotFoundError" in bad.error
    assert bad.capabilities is None


def test_discovery_is_stevedore_and_refresh_leaves_stevedores_own_cache_alone(third_party):
    import stevedore

    from transfercore.registry import refresh

    before = {k: list(v) for k, v in stevedore.ExtensionManager.ENTRY_POINT_CACHE.items()}
    refresh()
    assert "third" in installed_names()
    assert {k: list(v) for k, v in stevedore.ExtensionManager.ENTRY_POINT_CACHE.items()} == before


def test_the_listed_namespace_is_what_each_driver_implements():
    infos = {i.name: i for i in list_drivers()}
    assert infos["posix"].capabilities["namespace"] == ["list", "mkdir", "remove", "rename", "rmdir"]
    assert infos["append"].capabilities["namespace"] == ["remove"]

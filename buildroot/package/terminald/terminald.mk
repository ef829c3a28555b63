################################################################################
#
# terminald
#
################################################################################

TERMINALD_VERSION = local
TERMINALD_SITE = $(patsubst %/,%,$(dir $(call qstrip,$(BR2_PACKAGE_TERMINALD_BINARY))))
TERMINALD_SITE_METHOD = local
TERMINALD_LICENSE = Proprietary
TERMINALD_PROGRAMME_KEY = $(call qstrip,$(BR2_PACKAGE_TERMINALD_PROGRAMME_KEY))
TERMINALD_BOARD = $(call qstrip,$(BR2_PACKAGE_TERMINALD_BOARD))

define TERMINALD_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/terminald $(TARGET_DIR)/usr/bin/terminald
	$(SED) 's/^board = .*/board = "$(TERMINALD_BOARD)"/' \
		$(TARGET_DIR)/etc/tuanju/terminald.toml
	$(if $(TERMINALD_PROGRAMME_KEY), \
		$(INSTALL) -D -m 0444 $(TERMINALD_PROGRAMME_KEY) \
			$(TARGET_DIR)/etc/tuanju/programme.pub)
endef

$(eval $(generic-package))
